-- Fragment: oldest first (direction=forward).
ORDER BY Timestamp ASC
LIMIT {limit:UInt32}
