-- Calls agent mode ran on its own: the model turn (1, 2, ...) of the chat request that asked.
ALTER TABLE audit_log ADD COLUMN iteration INTEGER;
