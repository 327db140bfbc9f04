-- `check` with PG* variables: the server, database and role it actually reached, for the report
-- (host is NULL over a Unix-domain socket).
select current_user::text as role_name,
    current_database()::text as database_name,
    host(inet_server_addr()) as host,
    inet_server_port() as port
