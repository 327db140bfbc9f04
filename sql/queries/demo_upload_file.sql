-- Storage writes an uploaded file's object: $1 object name
-- ({lessonId}/{activityId}/{pupilId}/{filename}), $2 owner (the pupil), $3 metadata jsonb.
insert into storage.objects (bucket_id, name, owner, metadata)
values ('submissions', $1, $2, $3::jsonb)
