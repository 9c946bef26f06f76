-- Errors since the server started that mean a part on disk is damaged (a read failed on it):
-- counts and the last message, which names the part. Used by the supervisor's part-health check.
SELECT
    name,
    code,
    value,
    last_error_message
FROM system.errors
WHERE has({names:Array(String)}, name)
ORDER BY name
