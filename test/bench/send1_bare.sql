-- send 1/txn, bare SQL reference: one row per transaction (autocommit).
INSERT INTO bare (vt, read_ct, enqueued_at, payload) VALUES (now(), 0, now(), :payload);
