-- Storage deletes an uploaded file: $1 object name.
delete from storage.objects where bucket_id = 'submissions' and name = $1
