"""The galleries: filters and keyset paging, "My generations" and the team gallery, the clip
page and full-window viewer, a clip's stored files, zips and bulk actions."""
