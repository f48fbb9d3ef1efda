"""What a request costs the database. Sessions are read from Redis (the database only on a
miss) when Redis is the cache, since every web process shares it; from the database alone
when the cache is each process's own memory, where a logout in one process would leave
copies alive in the others. Connections are kept between requests, SQLite's too."""

import pytest
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse

from generations.models import Status

from .factories import make_generation
from .test_settings import clean_env, manage

SHOW_ENGINE = "from django.conf import settings; print(settings.SESSION_ENGINE)"


def engine(tmp_path, **extra: str) -> str:
    result = manage("shell", "-c", SHOW_ENGINE, env=clean_env(tmp_path, **extra))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_sessions_are_cached_only_in_a_cache_every_process_shares(tmp_path):
    env = {"REDIS_URL": "", "Q_BROKER": "orm"}
    assert engine(tmp_path, **env) == "django.contrib.sessions.backends.db"
    redis = {**env, "REDIS_URL": "redis://127.0.0.1:6379/0"}  # not connected: settings only
    assert engine(tmp_path, **redis) == "django.contrib.sessions.backends.cached_db"


@pytest.mark.redis
@pytest.mark.django_db
def test_with_redis_a_session_is_read_from_the_cache_and_a_logout_ends_it_there(
    client, alice, django_assert_num_queries
):
    assert settings.SESSION_ENGINE == "django.contrib.sessions.backends.cached_db"
    client.force_login(alice)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    cache_key = "django.contrib.sessions.cached_db" + key
    assert cache.get(cache_key) is not None
    page = reverse("my-generations")
    assert client.get(page).status_code == 200
    gen = make_generation(alice, status=Status.PROCESSING, remote_status="processing")
    token = f"{gen.public_id.hex}:{gen.card_version}:card"
    with django_assert_num_queries(2):  # the user and the card: no session query
        poll = client.post(reverse("live-cards"), {"live": token}, headers={"HX-Request": "true"})
        assert poll.status_code == 204
    stolen = client.cookies[settings.SESSION_COOKIE_NAME].value

    client.post(reverse("logout"))
    assert cache.get(cache_key) is None
    client.cookies[settings.SESSION_COOKIE_NAME] = stolen
    response = client.get(page)
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_database_connections_are_kept_between_requests_on_sqlite_too(tmp_path):
    """Opening a SQLite connection (and its pragmas) per request cost more than half of a
    poll's CPU: connections live for a minute, as on PostgreSQL."""
    show = "from django.conf import settings; print(settings.DATABASES['default']['CONN_MAX_AGE'])"
    for url in (f"sqlite:///{tmp_path / 'db.sqlite3'}", "postgres://kling@127.0.0.1:5432/kling"):
        env = clean_env(tmp_path, DATABASE_URL=url, REDIS_URL="", Q_BROKER="orm")
        result = manage("shell", "-c", show, env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == "60"
