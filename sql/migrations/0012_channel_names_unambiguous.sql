-- Who may join `assignment_results:{groupId}:{lessonId}`, tightened after a review.
--
-- 1. A channel name must say which group it is for. The name joins the ids with ':', and the
--    policy reads the group as everything before the second ':', so a group id that contains ':'
--    made the channel of group 'a:b', lesson 'l1' look like the channel of group 'a', lesson
--    'b:l1': a teacher of 'a' could join it and receive every live result of 'a:b'. Such a group
--    now has no channel: channel_name_v1 gives null, the daemon skips its cells with a warning
--    (`stage.skipped`) and its teachers see changes on their next refetch
--    (read_assignment_results, which takes the ids apart, is unaffected). Lesson ids may still
--    contain ':' (the group is what the policy checks).
-- 2. The prefix test used LIKE, where '_' matches any character ('assignmentXresults:g1:l1' was
--    read as a results channel): an exact prefix instead.
-- 3. The policy also requires the row's topic to be the channel being joined (Realtime's probe
--    rows carry it), so no other topic's rows are readable through it.
-- 4. is_group_teacher_v1, SECURITY DEFINER, searched `public` for its operators and was
--    executable by `anon`, which no policy needs: a search_path without any schema a user can
--    create in, and execution for the roles that join and read only.

create or replace function results_realtime.channel_name_v1(group_id text, lesson_id text)
returns text
language sql immutable
as $$
    select case when strpos(group_id, ':') = 0
                then 'assignment_results:' || group_id || ':' || lesson_id
           end
$$;

create or replace function results_realtime.parse_results_topic_v1(
    topic text, out group_id text, out lesson_id text
)
language sql immutable
as $$
    select case when valid then substr(rest, 1, colon - 1) end,
           case when valid then substr(rest, colon + 1) end
    from (
        select rest, strpos(rest, ':') as colon,
               strpos(rest, ':') between 2 and length(rest) - 1 as valid
        from (
            select case when starts_with(topic, 'assignment_results:')
                        then substr(topic, length('assignment_results:') + 1)
                   end as rest
        ) as prefixed
    ) as t
$$;

create or replace function results_realtime.is_group_teacher_v1(p_group_id text, p_user_id uuid)
returns boolean
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
    select exists (
        select from public.group_members as m
        where m.group_id = p_group_id and m.user_id = p_user_id and m.role = 'teacher'
    )
$$;

revoke all on function results_realtime.is_group_teacher_v1(text, uuid) from public, anon;
grant execute on function results_realtime.is_group_teacher_v1(text, uuid)
    to authenticated, service_role;

drop policy if exists results_realtime_teachers_read_v1 on realtime.messages;
create policy results_realtime_teachers_read_v1 on realtime.messages
    for select to authenticated
    using (
        realtime.messages.extension = 'broadcast'
        and realtime.messages.topic = realtime.topic()
        and results_realtime.is_group_teacher_v1(
            (results_realtime.parse_results_topic_v1(realtime.topic())).group_id,
            auth.uid()
        )
    );
