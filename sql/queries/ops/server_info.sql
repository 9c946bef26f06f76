-- The server otelingest writes to: version and seconds since it started (`otelingest status`).
SELECT version() AS version, uptime() AS uptime_s
