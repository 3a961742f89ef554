/*-------------------------------------------------------------------------
 *
 * relay.c
 *	  mq.relay: one pass of the outbox relay, with a fast path in C for
 *	  batches that go to topics only.
 *
 * A pass takes the relay lock (MQ_LOCK_RELAY, or in a database still at
 * 0.1.0 the advisory lock of that version: mq_relay_lock), reads up to
 * max_rows committed outbox rows in seq order, moves them to their
 * destinations and deletes them, all in the caller's transaction (see
 * doc/design.md, "Relay").  mq._lock_relay() gives the SQL functions
 * serialized with the relay the same lock.  The general pass
 * is SQL (mq._relay_sql): it routes through exchanges and into queues.
 * When every row of the batch goes straight to a topic, which is what a
 * busy outbox mostly holds, this file does the same work without the
 * query's intermediate results: partitions and offsets are computed in C,
 * the records are written to each topic's current segment in one
 * multi-row insert (direct.c), the partitions' next offsets are advanced,
 * and the outbox rows are deleted by TID.  Anything else (queues,
 * exchanges, a destination that has gone, a topic without a segment) is
 * left to the SQL pass, which is the reference behaviour.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/itemptr.h"
#include "storage/lock.h"
#include "catalog/namespace.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/uuid.h"
#include "utils/resowner.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(mq_relay);
PG_FUNCTION_INFO_V1(mq_sql_lock_relay);

/*
 * $1 max rows: the next batch of committed outbox rows.  Rows above the
 * last value of mq.outbox_seq are being loaded by a restore that has not
 * finished (see mq_outbox_seq_allocated): they wait.
 */
static MqStmt mq_stmt_relay_batch = {
	"SELECT o.ctid, o.seq, o.id, o.aggregatetype, o.aggregateid, o.payload,"
	"       o.headers"
	"  FROM mq.outbox o"
	" WHERE o.seq OPERATOR(pg_catalog.<=) (SELECT COALESCE("
	"       pg_catalog.pg_sequence_last_value('mq.outbox_seq'::pg_catalog.regclass), 0))"
	" ORDER BY o.seq LIMIT $1",
	1, {INT4OID}
};

/* $1 max rows: the general pass */
static MqStmt mq_stmt_relay_sql = {
	"SELECT mq._relay_sql($1)", 1, {INT4OID}
};

/* $1 topic id: its partition count and current segment */
static MqStmt mq_stmt_topic_state = {
	"SELECT t.partitions, t.current_seg FROM mq.topic t"
	" WHERE t.topic_id OPERATOR(pg_catalog.=) $1",
	1, {INT4OID}
};

/* $1 topic id: the next offset of each of its partitions */
static MqStmt mq_stmt_topic_offsets = {
	"SELECT p.partition, p.next_offset FROM mq.topic_partition p"
	" WHERE p.topic_id OPERATOR(pg_catalog.=) $1",
	1, {INT4OID}
};

/* $1 topic id, $2 partition, $3 new next offset */
static MqStmt mq_stmt_topic_advance = {
	"UPDATE mq.topic_partition SET next_offset = $3"
	" WHERE topic_id OPERATOR(pg_catalog.=) $1"
	"   AND partition OPERATOR(pg_catalog.=) $2",
	3, {INT4OID, INT4OID, INT8OID}
};

/* columns of a topic record, in the order relay rows are built */
#define MQ_RECORD_NCOLS 9
static const char *const mq_record_cols[MQ_RECORD_NCOLS] = {
	"seg", "topic_id", "partition", "offset", "key", "payload", "headers",
	"message_id", "published_at"
};

/* one topic of the batch */
typedef struct MqRelayTopic
{
	int32		topic_id;
	int32		partitions;
	int64		seg;
	int64	   *next_offset;	/* per partition */
	bool	   *touched;		/* per partition */
	int			nrows;
} MqRelayTopic;

/*
 * mq_relay_partition
 *		The partition of a record with key (NULL: none) and outbox seq, as
 *		the SQL relay chooses it (mq._key_bytes): Kafka's murmur2 of the
 *		key's UTF-8 bytes, or seq modulo the partition count without a key.
 *		In a SQL_ASCII database a key's bytes are all the server knows of
 *		it (any byte but 0 is accepted), so they are hashed as they are:
 *		UTF-8 keys get the partition they get elsewhere, and other bytes
 *		cannot fail a conversion.
 */
static int32
mq_relay_partition(text *key, int64 seq, int32 partitions)
{
	const char *bytes;
	int			len;
	int32		h;

	if (key == NULL)
		return (int32) (seq % partitions);
	len = VARSIZE_ANY_EXHDR(key);
	if (GetDatabaseEncoding() == PG_SQL_ASCII)
		bytes = VARDATA_ANY(key);
	else
		bytes = pg_server_to_any(VARDATA_ANY(key), len, PG_UTF8);
	if (bytes != VARDATA_ANY(key))
		len = strlen(bytes);
	h = mq_murmur2_bytes((const unsigned char *) bytes, len);
	return (int32) ((h & 0x7fffffff) % partitions);
}

/*
 * mq_relay_check_acl
 *		Raise the error a statement would raise unless the current user has
 *		privilege mode on table mq.<relname>.
 */
static void
mq_relay_check_acl(const char *relname, AclMode mode)
{
	Oid			relid = get_relname_relid(relname, get_namespace_oid("mq", false));
	AclResult	aclresult;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table mq.%s is missing", relname),
				 errhint("Reinstall the extension with DROP EXTENSION mq; CREATE EXTENSION mq.")));
	aclresult = pg_class_aclcheck(relid, GetUserId(), mode);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_TABLE, relname);
}

/*
 * mq_relay_topics
 *		Relay a batch whose rows all go to topics (dest_id[] per row).
 *		Returns false, having changed nothing, if the SQL pass must take the
 *		batch.  Inside SPI; rows is the batch's tuple table.
 */
static bool
mq_relay_topics(SPITupleTable *rows, uint64 n, const int32 *dest_id)
{
	TupleDesc	desc = rows->tupdesc;
	MqRelayTopic *topics = palloc0(sizeof(MqRelayTopic) * n);
	int			ntopics = 0;
	int		   *topic_of = palloc(sizeof(int) * n);
	TimestampTz now = GetCurrentTimestamp();
	MqDirectRel *segments;
	uint64		i;
	int			t;

	/* the topics of the batch, their state and next offsets */
	for (i = 0; i < n; i++)
	{
		for (t = 0; t < ntopics; t++)
			if (topics[t].topic_id == dest_id[i])
				break;
		if (t == ntopics)
		{
			MqRelayTopic *tp = &topics[ntopics++];
			Datum		arg = Int32GetDatum(dest_id[i]);
			bool		isnull;
			uint64		j;

			tp->topic_id = dest_id[i];
			mq_stmt_exec(&mq_stmt_topic_state, &arg, NULL, 1);
			if (SPI_processed == 0)
				return false;
			tp->partitions = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 1, &isnull));
			tp->seg = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 2, &isnull));
			if (isnull || tp->partitions < 1)
				return false;
			tp->next_offset = palloc0(sizeof(int64) * tp->partitions);
			tp->touched = palloc0(sizeof(bool) * tp->partitions);
			mq_stmt_exec(&mq_stmt_topic_offsets, &arg, NULL, 0);
			if (SPI_processed != (uint64) tp->partitions)
				return false;
			for (j = 0; j < SPI_processed; j++)
			{
				int32		p = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[j],
															SPI_tuptable->tupdesc, 1, &isnull));

				if (p < 0 || p >= tp->partitions)
					return false;
				tp->next_offset[p] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[j],
																 SPI_tuptable->tupdesc, 2, &isnull));
			}
		}
		topic_of[i] = t;
		topics[t].nrows++;
	}

	/*
	 * Privileges as the SQL pass would need them: INSERT on mq.topic_record
	 * (a partition's own are not checked when rows are routed through the
	 * parent) and DELETE on mq.outbox.
	 */
	mq_relay_check_acl("topic_record", ACL_INSERT);
	mq_relay_check_acl("outbox", ACL_DELETE);

	/* every topic's current segment must be there before anything moves */
	segments = palloc0(sizeof(MqDirectRel) * ntopics);
	for (t = 0; t < ntopics; t++)
	{
		MqDirectRel *dr = &segments[t];
		int			c;

		dr->relname = psprintf("topic_record_%d_" INT64_FORMAT,
							   topics[t].topic_id, topics[t].seg);
		dr->ncols = MQ_RECORD_NCOLS;
		for (c = 0; c < MQ_RECORD_NCOLS; c++)
			dr->colnames[c] = mq_record_cols[c];
		if (!OidIsValid(mq_direct_relid_missing_ok(dr)))
			return false;
	}

	/* each topic's records, in seq order, into its current segment */
	for (t = 0; t < ntopics; t++)
	{
		MqRelayTopic *tp = &topics[t];
		MqDirect	d;
		Datum	   *values = palloc(sizeof(Datum) * MQ_RECORD_NCOLS * tp->nrows);
		bool	   *nulls = palloc(sizeof(bool) * MQ_RECORD_NCOLS * tp->nrows);
		int			r = 0;

		for (i = 0; i < n; i++)
		{
			HeapTuple	tup = rows->vals[i];
			Datum	   *v = values + r * MQ_RECORD_NCOLS;
			bool	   *nl = nulls + r * MQ_RECORD_NCOLS;
			bool		isnull;
			int64		seq;
			Datum		key;
			bool		key_null;
			int32		part;

			if (topic_of[i] != t)
				continue;
			seq = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
			key = SPI_getbinval(tup, desc, 5, &key_null);
			part = mq_relay_partition(key_null ? NULL : DatumGetTextPP(key), seq,
									  tp->partitions);
			v[0] = Int64GetDatum(tp->seg);
			v[1] = Int32GetDatum(tp->topic_id);
			v[2] = Int32GetDatum(part);
			v[3] = Int64GetDatum(tp->next_offset[part]++);
			v[4] = key;
			v[5] = SPI_getbinval(tup, desc, 6, &nl[5]);
			v[6] = SPI_getbinval(tup, desc, 7, &nl[6]);
			v[7] = SPI_getbinval(tup, desc, 3, &isnull);
			v[8] = TimestampTzGetDatum(now);
			nl[0] = nl[1] = nl[2] = nl[3] = false;
			nl[4] = key_null;
			nl[7] = nl[8] = false;
			tp->touched[part] = true;
			r++;
		}
		mq_direct_open(&d, &segments[t], "mq.relay()", false);
		mq_direct_insert_many(&d, tp->nrows, values, nulls);
		mq_direct_close(&d);
	}

	/* advance the offsets, wake the topics' waiting consumers at commit */
	for (t = 0; t < ntopics; t++)
	{
		MqRelayTopic *tp = &topics[t];
		int32		p;

		for (p = 0; p < tp->partitions; p++)
		{
			Datum		args[3];

			if (!tp->touched[p])
				continue;
			args[0] = Int32GetDatum(tp->topic_id);
			args[1] = Int32GetDatum(p);
			args[2] = Int64GetDatum(tp->next_offset[p]);
			mq_stmt_exec(&mq_stmt_topic_advance, args, NULL, 0);
		}
		mq_xact_wake_topic(tp->topic_id);
	}
	return true;
}

/* the head of the outbox: the row the next pass of one row takes */
static MqStmt mq_stmt_outbox_head = {
	"SELECT o.seq FROM mq.outbox o ORDER BY o.seq LIMIT 1", 0, {InvalidOid}
};

/*
 * $1 seq, $2 SQLSTATE, $3 message, $4 detail: set the outbox row aside
 * with the error that stopped it.
 */
static MqStmt mq_stmt_set_aside = {
	"WITH d AS (DELETE FROM mq.outbox o WHERE o.seq OPERATOR(pg_catalog.=) $1"
	"           RETURNING o.*)"
	" INSERT INTO mq.outbox_dead (seq, id, aggregatetype, aggregateid, type,"
	"                             payload, headers, created_at, sqlstate, error,"
	"                             detail)"
	" SELECT d.seq, d.id, d.aggregatetype, d.aggregateid, d.type, d.payload,"
	"        d.headers, d.created_at, $2, $3, $4 FROM d",
	4, {INT8OID, TEXTOID, TEXTOID, TEXTOID}
};

/*
 * mq_relay_batch
 *		Move up to max_rows committed outbox rows to their destinations (the
 *		C path for batches that go to topics only, else the SQL pass).
 *		Returns the rows moved.
 */
static int64
mq_relay_batch(int32 max_rows)
{
	Datum		arg;
	SPITupleTable *rows;
	uint64		n;
	uint64		i;
	int32	   *dest_id;
	bool		topics_only = true;
	int64		moved;

	SPI_connect();
	arg = Int32GetDatum(max_rows);
	mq_stmt_exec(&mq_stmt_relay_batch, &arg, NULL, 0);
	rows = SPI_tuptable;
	n = SPI_processed;
	dest_id = palloc(sizeof(int32) * Max(n, 1));
	for (i = 0; i < n && topics_only; i++)
	{
		bool		isnull;
		text	   *dest = DatumGetTextPP(SPI_getbinval(rows->vals[i], rows->tupdesc,
														4, &isnull));

		if (mq_dest_lookup(VARDATA_ANY(dest), VARSIZE_ANY_EXHDR(dest),
						   &dest_id[i]) != 't')
			topics_only = false;
	}

	if (n > 0 && topics_only && mq_relay_topics(rows, n, dest_id))
	{
		Relation	outbox = table_open(mq_direct_relid(&mq_rel_outbox), RowExclusiveLock);

		for (i = 0; i < n; i++)
		{
			bool		isnull;
			ItemPointer tid = (ItemPointer) DatumGetPointer(SPI_getbinval(rows->vals[i],
																rows->tupdesc, 1, &isnull));

			simple_heap_delete(outbox, tid);
		}
		table_close(outbox, NoLock);
		moved = (int64) n;
	}
	else if (n > 0)
	{
		bool		isnull;

		mq_stmt_exec(&mq_stmt_relay_sql, &arg, NULL, 1);
		moved = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull));
	}
	else
		moved = 0;
	SPI_finish();
	return moved;
}

/*
 * mq_relay_try
 *		mq_relay_batch(max_rows) in a subtransaction.  Returns true and sets
 *		*moved if it succeeded; otherwise rolls the subtransaction back and
 *		returns false with the error in *edata.
 */
static bool
mq_relay_try(int32 max_rows, int64 *moved, ErrorData **edata)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		*moved = mq_relay_batch(max_rows);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		*edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * mq_relay_row_error
 *		Is edata an error of one row's contents (its destination, key,
 *		payload or routing), which relaying it again would raise again?
 *		Data exceptions, integrity violations, program limits (stack depth),
 *		errors raised by mq's SQL, and errors of objects (42) other than
 *		privileges.  Everything else (cancel, shutdown, deadlock,
 *		serialization, lack of memory or of privilege) is the pass's, not
 *		the row's: it is raised again.
 */
static bool
mq_relay_row_error(const ErrorData *edata)
{
	int			cls = ERRCODE_TO_CATEGORY(edata->sqlerrcode);

	if (edata->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE)
		return false;
	return cls == ERRCODE_DATA_EXCEPTION ||
		cls == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION ||
		cls == ERRCODE_PROGRAM_LIMIT_EXCEEDED ||
		cls == ERRCODE_PLPGSQL_ERROR ||
		cls == ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION;
}

/*
 * mq_relay_set_aside
 *		Move outbox row seq to mq.outbox_dead with the error that stopped
 *		it, and say so.  Returns false if mq.outbox_dead does not exist (a
 *		database still at 0.1.0).
 */
static bool
mq_relay_set_aside(int64 seq, const ErrorData *edata)
{
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	if (!OidIsValid(get_relname_relid("outbox_dead", get_namespace_oid("mq", false))))
		return false;
	SPI_connect();
	values[0] = Int64GetDatum(seq);
	values[1] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	values[2] = CStringGetTextDatum(edata->message ? edata->message : "");
	if (edata->detail)
		values[3] = CStringGetTextDatum(edata->detail);
	else
		nulls[3] = 'n';
	mq_stmt_exec(&mq_stmt_set_aside, values, nulls, 0);
	SPI_finish();
	ereport(WARNING,
			(errmsg("mq.relay: outbox row " INT64_FORMAT " cannot be relayed; it was moved to mq.outbox_dead", seq),
			 errdetail("%s (SQLSTATE %s)", edata->message ? edata->message : "",
					   unpack_sql_state(edata->sqlerrcode)),
			 errhint("Fix the cause, then move the row back into mq.outbox.")));
	return true;
}

/*
 * mq_relay_head
 *		seq of the outbox's head row, or -1 if the outbox is empty.
 */
static int64
mq_relay_head(void)
{
	int64		seq = -1;
	bool		isnull;

	SPI_connect();
	mq_stmt_exec(&mq_stmt_outbox_head, NULL, NULL, 1);
	if (SPI_processed == 1)
		seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return seq;
}

/*
 * mq_relay_lock_mq
 *		Take the relay lock of this database (MQ_LOCK_RELAY) until the end
 *		of the transaction: relay passes and segment maintenance are
 *		serialized on it.
 */
static void
mq_relay_lock_mq(void)
{
	LOCKTAG		tag;

	MQ_SET_LOCKTAG(tag, MQ_LOCK_RELAY, 0);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/*
 * mq_relay_sql_is_legacy
 *		Does the installed SQL (0.1.0) take the relay lock as the advisory
 *		lock (MQ_RELAY_ADVISORY_KEY1, MQ_RELAY_ADVISORY_KEY2)?  It does if
 *		it has no mq._lock_relay(), which 0.2.0 added: one syscache probe,
 *		not a query of pg_extension on every pass.
 */
static bool
mq_relay_sql_is_legacy(void)
{
	Oid			nsp = get_namespace_oid("mq", true);
	oidvector  *noargs = buildoidvector(NULL, 0);
	bool		legacy;

	legacy = OidIsValid(nsp) &&
		!SearchSysCacheExists3(PROCNAMEARGSNSP,
							   CStringGetDatum(MQ_RELAY_LOCK_FUNCTION),
							   PointerGetDatum(noargs),
							   ObjectIdGetDatum(nsp));
	pfree(noargs);
	return legacy;
}

/*
 * mq_relay_lock
 *		Take the relay lock that the installed SQL takes, so that this pass
 *		is serialized with the SQL pass (mq._relay_sql) and segment
 *		maintenance (mq._maintain_segments) of this version: MQ_LOCK_RELAY,
 *		or in a database still at 0.1.0, whose functions know only the
 *		advisory lock (28017, 2), that one.  ALTER EXTENSION mq UPDATE
 *		takes the advisory lock too: a pass that found 0.1.0 and waited
 *		for it may find 0.2.0 once it has it, and then takes MQ_LOCK_RELAY
 *		as well (always in this order), so it is serialized with the passes
 *		that start after the update.
 */
static void
mq_relay_lock(void)
{
	LOCKTAG		tag;

	if (mq_relay_sql_is_legacy())
	{
		SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, MQ_RELAY_ADVISORY_KEY1,
							 MQ_RELAY_ADVISORY_KEY2, 2);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
		if (mq_relay_sql_is_legacy())
			return;
	}
	mq_relay_lock_mq();
}

/*
 * mq_sql_lock_relay
 *		mq._lock_relay() RETURNS void: take the relay lock (MQ_LOCK_RELAY)
 *		until the end of the transaction, for the SQL functions that are
 *		serialized with relay passes.
 */
Datum
mq_sql_lock_relay(PG_FUNCTION_ARGS)
{
	mq_relay_lock_mq();
	PG_RETURN_VOID();
}

/*
 * mq_relay
 *		mq.relay(max_rows) RETURNS bigint: one relay pass in the caller's
 *		transaction; the number of outbox rows it moved.
 *
 * No single row can stop the relay: the batch runs in a subtransaction; if
 * it fails on a row's contents (mq_relay_row_error), the pass relays the
 * rows one at a time, each in a subtransaction, and a row that fails alone
 * is moved to mq.outbox_dead with its error (and a WARNING), so the rows
 * behind it go on.
 */
Datum
mq_relay(PG_FUNCTION_ARGS)
{
	int32		max_rows;
	int64		moved;
	ErrorData  *edata = NULL;

	mq_acl_check(MQ_KIND_ALL, 0, "*", MQ_PRIV_MANAGE);
	if (XactIsoLevel != XACT_READ_COMMITTED)
		/* after waiting for the previous pass, we must see what it committed */
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("mq.relay must run in a READ COMMITTED transaction")));
	if (PG_ARGISNULL(0) || PG_GETARG_INT32(0) < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must be at least 1")));
	max_rows = PG_GETARG_INT32(0);
	mq_check_writable("mq.relay()");

	/* passes are serialized */
	mq_relay_lock();

	if (mq_relay_try(max_rows, &moved, &edata))
		PG_RETURN_INT64(moved);
	if (!mq_relay_row_error(edata))
		ReThrowError(edata);

	/* one row at a time: set aside the row that fails alone */
	moved = 0;
	while (moved < max_rows)
	{
		int64		head = mq_relay_head();
		int64		one;
		ErrorData  *rowerr = NULL;

		if (head < 0)
			break;
		if (mq_relay_try(1, &one, &rowerr))
		{
			if (one == 0)
				break;
			moved += one;
			continue;
		}
		if (!mq_relay_row_error(rowerr))
			ReThrowError(rowerr);
		/* a row committed ahead of head meanwhile: try again */
		if (mq_relay_head() != head)
			continue;
		if (!mq_relay_set_aside(head, rowerr))
			ReThrowError(rowerr);
	}
	PG_RETURN_INT64(moved);
}
