-- A record may stand for several calls: a caller's denied calls past its budget are folded.
ALTER TABLE audit_log ADD COLUMN repeats INTEGER NOT NULL DEFAULT 1;
