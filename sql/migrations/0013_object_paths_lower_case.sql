-- The reference object_cell_v1 (0005) accepted a pupil folder in upper case ('~*'), but
-- cell_state_v2 (0010) counts a cell's uploads by the folder `pupil_id::text` spells, which is
-- lower case: an upload to '{lesson}/{activity}/AAAAAAAA-.../file' was announced with
-- uploadCount 0. A pupil folder is the pupil's id as Supabase writes it (auth.uid()::text, lower
-- case), so another spelling now maps to no cell, like any other path of the wrong shape.

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
      and p.parts[cardinality(p.parts)] not in ('', '.emptyFolderPlaceholder')
      and p.parts[3] ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
$$;

revoke all on function results_realtime.object_cell_v1(text, text) from public;
