-- group fetch with auto_commit, one consumer: fetch up to 500 records of
-- topic 'tf' (all 4 partitions, no member) and commit past them in the same
-- call, sending the records to the client (one statement, one transaction).
SELECT partition, "offset", key, payload, message_id
FROM mq.fetch('tf', 'g', 500, auto_commit => true);
