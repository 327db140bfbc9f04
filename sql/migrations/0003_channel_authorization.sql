-- Who may join `assignment_results:{groupId}:{lessonId}`: the teachers of groupId. The predicate
-- lives in one function used by the realtime.messages policy and by read_assignment_results().

create schema if not exists results_realtime;
grant usage on schema results_realtime to anon, authenticated, service_role;

-- Splits a channel name into its group and lesson; null parts when it is not a results channel.
-- Group ids must not contain ':'; the lesson id is everything after the second ':'.
create or replace function results_realtime.parse_results_topic_v1(
    topic text, out group_id text, out lesson_id text
)
language sql immutable
as $$
    select
        case when topic like 'assignment_results:%:%' then split_part(topic, ':', 2) end,
        case when topic like 'assignment_results:%:%'
             then substr(topic, length('assignment_results:' || split_part(topic, ':', 2) || ':') + 1)
        end
$$;

-- True when the user teaches the group. SECURITY DEFINER: the app's own RLS on group_members
-- must not hide the membership row from the very check that needs it.
create or replace function results_realtime.is_group_teacher_v1(p_group_id text, p_user_id uuid)
returns boolean
language sql stable security definer
set search_path = pg_catalog, public
as $$
    select exists (
        select from public.group_members
        where group_id = p_group_id and user_id = p_user_id and role = 'teacher'
    )
$$;

revoke all on function results_realtime.is_group_teacher_v1(text, uuid) from public;
grant execute on function results_realtime.is_group_teacher_v1(text, uuid)
    to anon, authenticated, service_role;

drop policy if exists results_realtime_teachers_read_v1 on realtime.messages;
create policy results_realtime_teachers_read_v1 on realtime.messages
    for select to authenticated
    using (
        realtime.messages.extension = 'broadcast'
        and results_realtime.is_group_teacher_v1(
            (results_realtime.parse_results_topic_v1(realtime.topic())).group_id,
            auth.uid()
        )
    );
