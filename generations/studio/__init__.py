"""The studio: the prompt form and its submit, the live card's status view, cancel, retry and
visibility, and the callback CometAPI pushes to."""
