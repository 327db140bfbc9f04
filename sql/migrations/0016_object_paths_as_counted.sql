-- object_cell_v1 (0013) mapped no cell for an object whose name ends in '/' (a "folder" object,
-- '{lesson}/{activity}/{pupil}/dir/'), but cell_state_v2 (0010) counts every object below the
-- cell's folder except Storage's '.emptyFolderPlaceholder' files: creating or deleting such an
-- object changed the cell's uploadCount without an event. The two now agree: every object below
-- the folder maps to the cell, except a placeholder; a name that is the folder itself
-- ('{lesson}/{activity}/{pupil}/') is below nothing and maps to none.

create or replace function results_realtime.object_cell_v1(
    bucket_id text, name text,
    out lesson_id text, out activity_id text, out pupil_id uuid
)
language sql stable
as $$
    select act.lesson_id, act.id, p.parts[3]::uuid
    from (select string_to_array(object_cell_v1.name, '/') as parts) as p
    join public.activities as act
        on act.id = p.parts[2] and act.lesson_id = p.parts[1]
    where object_cell_v1.bucket_id = 'submissions'
      and cardinality(p.parts) >= 4
      and p.parts[1] <> '' and p.parts[2] <> ''
      and p.parts[cardinality(p.parts)] <> '.emptyFolderPlaceholder'
      and not (cardinality(p.parts) = 4 and p.parts[4] = '')
      and p.parts[3] ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
$$;

revoke all on function results_realtime.object_cell_v1(text, text) from public;
