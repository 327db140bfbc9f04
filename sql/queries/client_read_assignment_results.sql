-- The refetch of the results client: the whole assignment, a row, a column or a cell.
select public.read_assignment_results($1::text, $2::text, $3::uuid, $4::text)
