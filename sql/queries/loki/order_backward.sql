-- Fragment: newest first (Loki's default direction=backward).
ORDER BY Timestamp DESC
LIMIT {limit:UInt32}
