-- A link's version, raised by every change made through the API (not by counted visits
-- or the expiry event): `PATCH /api/v1/links/{code}` with `If-Match: "<version>"` is
-- refused with 412 when someone else changed the link since it was read.
alter table links add column version integer not null default 1;
