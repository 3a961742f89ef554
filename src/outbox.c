/*-------------------------------------------------------------------------
 *
 * outbox.c
 *	  The outbox: mq.publish and mq.publish_batch, the triggers of
 *	  mq.outbox (destination check, key lock, relay wake-up), the per-key
 *	  locks that make per-key order commit order, and the write buffer of
 *	  mq.publish: rows collected in memory and written in one multi-row
 *	  insert at the end of the statement.
 *
 * An application that publishes many messages in one statement (or one
 * plpgsql loop body) calls mq.publish once per message.  One-row inserts
 * write a WAL record per row and per index entry; buffering the rows and
 * writing them with the table AM's multi-insert writes one per heap page,
 * which is what limits publishing under synchronous commit.
 *
 * Everything about a message that its caller can observe is settled when
 * mq.publish returns: the destination check, the key lock, the event id
 * and the relay order (seq).  Only the heap and index writes wait, and the
 * rows carry the command id of their publish, so every later query sees
 * them and no earlier snapshot does, as with an INSERT.  The buffer is
 * written when any executor run starts or ends, before a subtransaction
 * commits, before the transaction commits or prepares, and whenever it
 * holds MQ_OUTBOX_BUFFER_ROWS rows or MQ_OUTBOX_BUFFER_BYTES of values.
 * Rows are written under the xid of the level that published them or of
 * a subtransaction that commits into it (see MqOutboxBatch).  Rows of a
 * subtransaction that aborts are dropped with it; an aborting transaction
 * drops all.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "access/detoast.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/memutils.h"
#include "utils/uuid.h"

PG_FUNCTION_INFO_V1(mq_outbox_trigger);
PG_FUNCTION_INFO_V1(mq_outbox_check);
PG_FUNCTION_INFO_V1(mq_publish);
PG_FUNCTION_INFO_V1(mq_publish_batch);

/*
 * mq.outbox as publish and publish_batch write it (Debezium's columns plus
 * the relay order), every column given.
 */
MqDirectRel mq_rel_outbox = {
	"outbox", MQ_OUTBOX_NCOLS,
	{"id", "aggregatetype", "aggregateid", "type", "payload", "headers",
	"created_at", "seq"}
};

/* $1 destination, $2 key, $3 headers: would anything receive it? */
static MqStmt mq_stmt_routable = {
	"SELECT EXISTS (SELECT 1 FROM mq._route($1, $2, $3, false))",
	3, {TEXTOID, TEXTOID, JSONBOID}
};

/*
 * The write buffer.  Rows are kept in batches: the rows of one batch were
 * published by one command (they carry its command id, as an INSERT's rows
 * would) at one subtransaction level.  A batch is written as soon as
 * anything could look for its rows: when any executor run starts or ends,
 * before a subtransaction or the transaction commits or prepares, and when
 * a row of another command or level comes.
 *
 * A batch written while a deeper subtransaction is current carries that
 * subtransaction's xid, and would vanish if it rolled back while the
 * publishing level goes on.  So such a batch is kept ("on loan") until the
 * subtransaction that wrote it has committed into the publishing level;
 * if it aborts first, the batch is written again at the next occasion.
 */
typedef struct MqOutboxBatch
{
	struct MqOutboxBatch *next; /* the next older batch */
	MemoryContext cxt;			/* holds this batch and its values */
	int			level;			/* nest level that published the rows */
	int			written;		/* 0: not written; else the level that wrote
								 * them (> level while on loan) */
	CommandId	cid;			/* of the publishing command */
	int			nrows;
	int			maxrows;		/* room in values and nulls, in rows */
	Size		nbytes;			/* of the variable-length values held */
	Datum	   *values;			/* nrows * MQ_OUTBOX_NCOLS */
	bool	   *nulls;
} MqOutboxBatch;

/* newest first; NULL when empty; everything in TopTransactionContext */
static MqOutboxBatch *mq_outbox_batches = NULL;
static bool mq_outbox_flushing = false;

/* distinct key locks taken by this transaction (see mq_outbox_lock_key) */
static int	mq_outbox_key_locks = 0;

static ExecutorStart_hook_type mq_prev_ExecutorStart = NULL;
static ExecutorEnd_hook_type mq_prev_ExecutorEnd = NULL;

/*
 * mq_outbox_batch_free
 *		Unlink batch b (prev is the batch before it in the list, or NULL) and
 *		free it.
 */
static void
mq_outbox_batch_free(MqOutboxBatch *prev, MqOutboxBatch *b)
{
	if (prev == NULL)
		mq_outbox_batches = b->next;
	else
		prev->next = b->next;
	MemoryContextDelete(b->cxt);
}

/*
 * mq_outbox_buffer_flush
 *		Write every batch not written yet, each in one multi-row insert with
 *		its own command id, then free those that are now safe (written at
 *		their own level).
 */
void
mq_outbox_buffer_flush(void)
{
	MqOutboxBatch *b;
	MqOutboxBatch *prev;
	MqOutboxBatch *next;
	int			level;
	bool		any = false;

	if (mq_outbox_batches == NULL || mq_outbox_flushing ||
		!IsTransactionState() || IsInParallelMode())
		return;
	for (b = mq_outbox_batches; b != NULL; b = b->next)
		if (b->written == 0 && b->nrows > 0)
			any = true;
	level = GetCurrentTransactionNestLevel();
	if (any)
	{
		mq_outbox_flushing = true;
		PG_TRY();
		{
			MqDirect	d;

			mq_direct_open(&d, &mq_rel_outbox, "mq.publish()", false);
			for (b = mq_outbox_batches; b != NULL; b = b->next)
			{
				if (b->written != 0 || b->nrows == 0)
					continue;
				d.estate->es_output_cid = b->cid;
				mq_direct_insert_many(&d, b->nrows, b->values, b->nulls);
				b->written = level;
			}
			mq_direct_close(&d);
		}
		PG_FINALLY();
		{
			mq_outbox_flushing = false;
		}
		PG_END_TRY();
	}
	prev = NULL;
	for (b = mq_outbox_batches; b != NULL; b = next)
	{
		next = b->next;
		if (b->written != 0 && b->written <= b->level)
			mq_outbox_batch_free(prev, b);
		else
			prev = b;
	}
}

/*
 * mq_outbox_buffer_add
 *		Buffer one outbox row (values and nulls in mq_rel_outbox's order);
 *		the values are copied.
 */
void
mq_outbox_buffer_add(const Datum *values, const bool *nulls)
{
	MqDirectRel *dr = &mq_rel_outbox;
	MqOutboxBatch *b = mq_outbox_batches;
	CommandId	cid = GetCurrentCommandId(true);
	int			level = GetCurrentTransactionNestLevel();
	MemoryContext oldcxt;
	int			base;
	int			i;

	if (b != NULL && b->written == 0 &&
		(b->level != level || b->cid != cid ||
		 b->nrows >= MQ_OUTBOX_BUFFER_ROWS || b->nbytes >= MQ_OUTBOX_BUFFER_BYTES))
		mq_outbox_buffer_flush();
	b = mq_outbox_batches;
	if (b == NULL || b->written != 0 || b->level != level || b->cid != cid)
	{
		MemoryContext cxt = AllocSetContextCreate(TopTransactionContext,
												  "mq outbox buffer",
												  ALLOCSET_DEFAULT_SIZES);

		b = MemoryContextAllocZero(cxt, sizeof(MqOutboxBatch));
		b->cxt = cxt;
		b->level = level;
		b->cid = cid;
		b->maxrows = MQ_OUTBOX_BATCH_INITIAL_ROWS;
		b->values = MemoryContextAlloc(cxt, sizeof(Datum) * MQ_OUTBOX_NCOLS * b->maxrows);
		b->nulls = MemoryContextAlloc(cxt, sizeof(bool) * MQ_OUTBOX_NCOLS * b->maxrows);
		b->next = mq_outbox_batches;
		mq_outbox_batches = b;
	}
	if (b->nrows >= b->maxrows)
	{
		b->maxrows = Min(b->maxrows * 2, MQ_OUTBOX_BUFFER_ROWS);
		b->values = repalloc(b->values, sizeof(Datum) * MQ_OUTBOX_NCOLS * b->maxrows);
		b->nulls = repalloc(b->nulls, sizeof(bool) * MQ_OUTBOX_NCOLS * b->maxrows);
	}
	/* the columns' by-value-ness and lengths come from the table */
	(void) mq_direct_relid(dr);
	oldcxt = MemoryContextSwitchTo(b->cxt);
	base = b->nrows * MQ_OUTBOX_NCOLS;
	for (i = 0; i < MQ_OUTBOX_NCOLS; i++)
	{
		Datum		v = values[i];

		b->nulls[base + i] = nulls[i];
		if (nulls[i])
		{
			b->values[base + i] = (Datum) 0;
			continue;
		}
		/* a value stored elsewhere is fetched now, while it surely exists */
		if (dr->attlen[i] == -1 && VARATT_IS_EXTERNAL(DatumGetPointer(v)))
			v = PointerGetDatum(detoast_external_attr((struct varlena *) DatumGetPointer(v)));
		b->values[base + i] = datumCopy(v, dr->attbyval[i], dr->attlen[i]);
		if (dr->attlen[i] == -1)
			b->nbytes += VARSIZE_ANY(DatumGetPointer(b->values[base + i]));
	}
	MemoryContextSwitchTo(oldcxt);
	b->nrows++;
}

/*
 * mq_outbox_ExecutorStart
 *		ExecutorStart hook: a query is about to start; write what is
 *		buffered first, so that it sees the rows published before it, as it
 *		would see rows inserted before it (the rows carry the command ids of
 *		their publishes, so a snapshot taken before those does not).
 */
static void
mq_outbox_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	if (mq_outbox_batches != NULL)
		mq_outbox_buffer_flush();
	if (mq_prev_ExecutorStart)
		mq_prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/*
 * mq_outbox_ExecutorEnd
 *		ExecutorEnd hook: a statement (or a nested query) ended; write what
 *		it buffered.
 */
static void
mq_outbox_ExecutorEnd(QueryDesc *queryDesc)
{
	if (mq_prev_ExecutorEnd)
		mq_prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
	if (mq_outbox_batches != NULL)
		mq_outbox_buffer_flush();
}

/*
 * mq_outbox_xact_callback
 *		Write the buffer before commit and prepare; forget it, and the count
 *		of key locks, when the transaction ends (the memory goes with the
 *		transaction's).
 */
static void
mq_outbox_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			mq_outbox_buffer_flush();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			mq_outbox_batches = NULL;
			mq_outbox_flushing = false;
			mq_outbox_key_locks = 0;
			break;
	}
}

/*
 * mq_outbox_subxact_callback
 *		Before a subtransaction commits, write the buffer; once it has
 *		committed, its rows and what it wrote belong to its parent.  When
 *		one aborts, drop the rows it published, and mark what it wrote on
 *		loan for an outer level as not written.
 */
static void
mq_outbox_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						   SubTransactionId parentSubid, void *arg)
{
	MqOutboxBatch *b;
	MqOutboxBatch *prev = NULL;
	MqOutboxBatch *next;
	int			level;

	if (event == SUBXACT_EVENT_PRE_COMMIT_SUB)
	{
		mq_outbox_buffer_flush();
		return;
	}
	if (event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		mq_outbox_flushing = false;
	/* the subtransaction ending is still the current one */
	level = GetCurrentTransactionNestLevel();
	for (b = mq_outbox_batches; b != NULL; b = next)
	{
		next = b->next;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			if (b->level >= level)
				b->level = level - 1;
			if (b->written >= level)
				b->written = level - 1;
			if (b->written != 0 && b->written <= b->level)
			{
				mq_outbox_batch_free(prev, b);
				continue;
			}
		}
		else
		{
			if (b->level >= level)
			{
				mq_outbox_batch_free(prev, b);
				continue;
			}
			if (b->written >= level)
				b->written = 0;
		}
		prev = b;
	}
}

/*
 * mq_outbox_init
 *		Install the executor hooks and transaction callbacks; from _PG_init.
 */
void
mq_outbox_init(void)
{
	mq_prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = mq_outbox_ExecutorStart;
	mq_prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = mq_outbox_ExecutorEnd;
	RegisterXactCallback(mq_outbox_xact_callback, NULL);
	RegisterSubXactCallback(mq_outbox_subxact_callback, NULL);
}

/*
 * mq_outbox_trigger
 *		Statement-level AFTER INSERT trigger on mq.outbox: wake the relay
 *		(this database's worker) when the inserting transaction commits.
 */
Datum
mq_outbox_trigger(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("mq._outbox_trigger() must be called as a trigger")));
	mq_xact_relay_on_commit();
	return PointerGetDatum(NULL);
}

/*
 * mq_outbox_check_dest
 *		Complain unless dest names a queue, topic or exchange; hint (if not
 *		NULL) tells the user where the name came from.
 */
static void
mq_outbox_check_dest(text *dest, const char *hint)
{
	if (mq_dest_kind(VARDATA_ANY(dest), VARSIZE_ANY_EXHDR(dest)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no queue, topic or exchange is called \"%s\"",
						text_to_cstring(dest)),
				 hint ? errhint("%s", hint) : 0));
}

/*
 * mq_outbox_lock_key
 *		Serialize the writers of one (destination, key) until commit, so
 *		that per-key relay order (by seq, drawn after this lock) is commit
 *		order.
 *
 * The first MQ_PUBLISH_KEY_LOCKS distinct keys of a transaction are locked
 * one by one (ExclusiveLock, class MQ_LOCK_PUBLISH_KEY, on the hash of
 * destination and key), each with an intent lock (RowExclusiveLock) on the
 * key's stripe: one of MQ_PUBLISH_KEY_STRIPES locks (class
 * MQ_LOCK_PUBLISH_STRIPE) the hashes are spread over.  Past that, a key is
 * covered by an ExclusiveLock on its stripe, which conflicts with every
 * other writer's intent lock on it: publishers of the stripe's keys wait
 * for this transaction's commit as they would for its key locks.  So a
 * transaction holds at most MQ_PUBLISH_KEY_LOCKS + MQ_PUBLISH_KEY_STRIPES
 * of these locks whatever its number of keys.  All are in mq's lock-tag
 * space, apart from user advisory locks.
 */
static void
mq_outbox_lock_key(text *dest, text *key)
{
	uint32		h;
	LOCKTAG		stripe;
	LOCKTAG		tag;

	h = hash_bytes((const unsigned char *) VARDATA_ANY(dest), VARSIZE_ANY_EXHDR(dest));
	h = hash_combine(h, hash_bytes((const unsigned char *) VARDATA_ANY(key),
								   VARSIZE_ANY_EXHDR(key)));
	MQ_SET_LOCKTAG(stripe, MQ_LOCK_PUBLISH_STRIPE, h % MQ_PUBLISH_KEY_STRIPES);
	if (mq_outbox_key_locks >= MQ_PUBLISH_KEY_LOCKS)
	{
		(void) LockAcquire(&stripe, ExclusiveLock, false, false);
		return;
	}
	(void) LockAcquire(&stripe, RowExclusiveLock, false, false);
	MQ_SET_LOCKTAG(tag, MQ_LOCK_PUBLISH_KEY, h);
	if (LockAcquire(&tag, ExclusiveLock, false, false) != LOCKACQUIRE_ALREADY_HELD)
		mq_outbox_key_locks++;
}

/*
 * mq_outbox_row_restored
 *		Whether an outbox row is being loaded by a restore: its seq is above
 *		what mq.outbox_seq has handed out.  A restore loads mq.outbox before
 *		the queues, topics and exchanges (name order) and sets the sequence
 *		after all data, so such a row's destination may simply not be loaded
 *		yet; the relay leaves it alone until the sequence is set.
 */
static bool
mq_outbox_row_restored(HeapTuple tup, TupleDesc desc, int att_seq)
{
	bool		isnull;
	Datum		d;

	d = heap_getattr(tup, att_seq, desc, &isnull);
	return !isnull && DatumGetInt64(d) > mq_outbox_seq_allocated();
}

/*
 * mq_outbox_check
 *		BEFORE INSERT row trigger on mq.outbox: the destination (column
 *		aggregatetype) must be a queue, topic or exchange; the writers of one
 *		(destination, key) are serialized until commit (mq_outbox_lock_key);
 *		and a row without a seq gets one now, after the key lock, so that
 *		per-key relay order is commit order (a seq given explicitly, as a
 *		restore gives it, is kept).
 *		A row that a restore loads ahead of its destination is let in (see
 *		mq_outbox_row_restored).
 */
Datum
mq_outbox_check(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tup;
	bool		isnull;
	Datum		d;
	text	   *dest;
	static int	att_dest = 0;
	static int	att_key = 0;
	static int	att_seq = 0;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("mq._outbox_check() must be a BEFORE ROW trigger")));
	desc = RelationGetDescr(td->tg_relation);
	tup = td->tg_trigtuple;
	if (att_dest <= 0 || att_key <= 0 || att_seq <= 0 ||
		att_dest > desc->natts || att_key > desc->natts || att_seq > desc->natts ||
		strcmp(NameStr(TupleDescAttr(desc, att_dest - 1)->attname), "aggregatetype") != 0 ||
		strcmp(NameStr(TupleDescAttr(desc, att_key - 1)->attname), "aggregateid") != 0 ||
		strcmp(NameStr(TupleDescAttr(desc, att_seq - 1)->attname), "seq") != 0)
	{
		att_dest = SPI_fnumber(desc, "aggregatetype");
		att_key = SPI_fnumber(desc, "aggregateid");
		att_seq = SPI_fnumber(desc, "seq");
		if (att_dest <= 0 || att_key <= 0 || att_seq <= 0)
			elog(ERROR, "mq: mq.outbox lacks aggregatetype, aggregateid or seq");
	}

	d = heap_getattr(tup, att_dest, desc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("aggregatetype (the destination) must not be NULL")));
	dest = DatumGetTextPP(d);
	if (mq_dest_kind(VARDATA_ANY(dest), VARSIZE_ANY_EXHDR(dest)) == 0 &&
		!mq_outbox_row_restored(tup, desc, att_seq))
		mq_outbox_check_dest(dest, "aggregatetype names the destination of the event.");
	mq_acl_check_publish(dest);
	d = heap_getattr(tup, att_key, desc, &isnull);
	if (!isnull)
		mq_outbox_lock_key(dest, DatumGetTextPP(d));
	(void) heap_getattr(tup, att_seq, desc, &isnull);
	if (isnull)
	{
		int			col = att_seq;
		Datum		seq = Int64GetDatum(mq_next_outbox_seq());
		bool		seqnull = false;

		tup = heap_modify_tuple_by_cols(tup, desc, 1, &col, &seq, &seqnull);
	}
	return PointerGetDatum(tup);
}

/*
 * mq_random_uuid
 *		A version 4 (random) UUID, as gen_random_uuid() makes it.
 *
 * pg_strong_random() costs a few microseconds per call with OpenSSL 3, more
 * than the rest of a publish, so strong random bytes are drawn 4 kB at a
 * time into a per-process pool.  The pool starts empty in every process
 * (it is never filled before a fork), so no two processes share bytes.
 */
static void
mq_random_uuid(pg_uuid_t *uuid)
{
	static unsigned char pool[4096];
	static int	pool_used = sizeof(pool);

	if (pool_used + UUID_LEN > (int) sizeof(pool))
	{
		if (!pg_strong_random(pool, sizeof(pool)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random values")));
		pool_used = 0;
	}
	memcpy(uuid->data, pool + pool_used, UUID_LEN);
	/* each byte is used once */
	memset(pool + pool_used, 0, UUID_LEN);
	pool_used += UUID_LEN;
	uuid->data[6] = (uuid->data[6] & 0x0f) | 0x40;	/* version 4 */
	uuid->data[8] = (uuid->data[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
}

/*
 * mq_publish_check_routable
 *		For mandatory publishing: raise an error unless something would
 *		receive a message to dest with key and headers.
 */
static void
mq_publish_check_routable(text *dest, Datum key, bool key_null,
						  Datum headers, bool headers_null)
{
	Datum		values[3];
	char		nulls[3];
	bool		isnull;
	bool		routable;

	values[0] = PointerGetDatum(dest);
	values[1] = key;
	values[2] = headers;
	nulls[0] = ' ';
	nulls[1] = key_null ? 'n' : ' ';
	nulls[2] = headers_null ? 'n' : ' ';
	SPI_connect();
	mq_stmt_exec(&mq_stmt_routable, values, nulls, 1);
	routable = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	if (!routable)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("message to \"%s\" with key \"%s\" is unroutable",
						text_to_cstring(dest),
						key_null ? "" : text_to_cstring(DatumGetTextPP(key))),
				 errhint("No binding routes it to a queue or topic; bind one, or publish without mandatory.")));
}

/*
 * mq_outbox_row
 *		Fill values/nulls (mq_rel_outbox's order) with a new outbox row for
 *		dest and return its event id (palloc'd).  Takes the key's lock.
 */
static pg_uuid_t *
mq_outbox_row(Datum *values, bool *nulls, text *dest, Datum key, bool key_null,
			  Datum payload, bool payload_null, Datum headers, bool headers_null)
{
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

	if (!key_null)
		mq_outbox_lock_key(dest, DatumGetTextPP(key));
	mq_random_uuid(id);
	values[0] = UUIDPGetDatum(id);
	values[1] = PointerGetDatum(dest);
	values[2] = key;
	values[3] = (Datum) 0;
	values[4] = payload;
	values[5] = headers;
	values[6] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	values[7] = Int64GetDatum(mq_next_outbox_seq());
	nulls[0] = nulls[1] = false;
	nulls[2] = key_null;
	nulls[3] = true;
	nulls[4] = payload_null;
	nulls[5] = headers_null;
	nulls[6] = nulls[7] = false;
	return id;
}

/*
 * mq_publish_dest
 *		The destination argument: not NULL, and an existing queue, topic or
 *		exchange.
 */
static text *
mq_publish_dest(FunctionCallInfo fcinfo)
{
	text	   *dest;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("destination must not be NULL")));
	dest = PG_GETARG_TEXT_PP(0);
	mq_outbox_check_dest(dest, NULL);
	mq_acl_check_publish(dest);
	return dest;
}

/*
 * mq_publish
 *		mq.publish(destination, payload, key, headers, mandatory) RETURNS
 *		uuid: write an outbox row in the caller's transaction; with
 *		mandatory, refuse a message that nothing would receive.
 *
 * Does what mq.outbox's triggers do for an INSERT (the destination check,
 * the key lock, the relay's wake-up at commit) and hands the row to the
 * outbox buffer (outbox.c), which writes it by the end of the statement.
 */
Datum
mq_publish(PG_FUNCTION_ARGS)
{
	text	   *dest;
	Datum		values[MQ_OUTBOX_NCOLS];
	bool		nulls[MQ_OUTBOX_NCOLS];
	pg_uuid_t  *id;

	mq_check_writable("mq.publish()");
	dest = mq_publish_dest(fcinfo);
	if (!PG_ARGISNULL(4) && PG_GETARG_BOOL(4))
		mq_publish_check_routable(dest,
								  PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2),
								  PG_ARGISNULL(2),
								  PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3),
								  PG_ARGISNULL(3));
	mq_direct_check_insert(&mq_rel_outbox);
	id = mq_outbox_row(values, nulls, dest,
					   PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2), PG_ARGISNULL(2),
					   PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1), PG_ARGISNULL(1),
					   PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3), PG_ARGISNULL(3));
	mq_outbox_buffer_add(values, nulls);
	mq_xact_relay_on_commit();
	PG_RETURN_UUID_P(id);
}

/*
 * mq_publish_array
 *		Deconstruct an optional per-message array argument of publish_batch
 *		(NULL: *elems stays NULL), checking its shape against n messages.
 */
static void
mq_publish_array(FunctionCallInfo fcinfo, int argno, const char *argname,
				 Oid elemtype, int n, Datum **elems, bool **nulls)
{
	ArrayType  *arr;
	int			count;

	*elems = NULL;
	*nulls = NULL;
	if (PG_ARGISNULL(argno))
		return;
	arr = PG_GETARG_ARRAYTYPE_P(argno);
	mq_check_same_length(mq_check_array(arr, argname, true), n, argname);
	deconstruct_array(arr, elemtype, -1, false, TYPALIGN_INT, elems, nulls, &count);
}

/*
 * mq_publish_batch
 *		mq.publish_batch(destination, payloads, keys, headers, mandatory)
 *		RETURNS SETOF uuid: one outbox row per payload, in one multi-row
 *		insert; the event ids in input order.
 */
Datum
mq_publish_batch(PG_FUNCTION_ARGS)
{
	text	   *dest;
	bool		mandatory = !PG_ARGISNULL(4) && PG_GETARG_BOOL(4);
	Datum	   *pv,
			   *kv,
			   *hv;
	bool	   *pn,
			   *kn,
			   *hn;
	int			n;
	Tuplestorestate *store;
	TupleDesc	desc;
	MqDirect	d;
	Datum	   *values;
	bool	   *nulls;
	int			i;

	mq_check_writable("mq.publish_batch()");
	dest = mq_publish_dest(fcinfo);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payloads must not be NULL")));
	/* a NULL payload element is a NULL payload, as mq.publish accepts one */
	(void) mq_check_array(PG_GETARG_ARRAYTYPE_P(1), "payloads", true);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), JSONBOID, -1, false,
					  TYPALIGN_INT, &pv, &pn, &n);
	mq_publish_array(fcinfo, 2, "keys", TEXTOID, n, &kv, &kn);
	mq_publish_array(fcinfo, 3, "headers", JSONBOID, n, &hv, &hn);

	if (mandatory)
		for (i = 0; i < n; i++)
			mq_publish_check_routable(dest,
									  kv && !kn[i] ? kv[i] : (Datum) 0, !kv || kn[i],
									  hv && !hn[i] ? hv[i] : (Datum) 0, !hv || hn[i]);

	store = mq_srf_init(fcinfo, &desc);
	if (n == 0)
		return (Datum) 0;
	mq_direct_open(&d, &mq_rel_outbox, "mq.publish_batch()", true);
	values = palloc(sizeof(Datum) * MQ_OUTBOX_NCOLS * n);
	nulls = palloc(sizeof(bool) * MQ_OUTBOX_NCOLS * n);
	for (i = 0; i < n; i++)
	{
		pg_uuid_t  *id;
		Datum		idd;
		bool		idnull = false;

		id = mq_outbox_row(values + i * MQ_OUTBOX_NCOLS, nulls + i * MQ_OUTBOX_NCOLS,
						   dest,
						   kv && !kn[i] ? kv[i] : (Datum) 0, !kv || kn[i],
						   pv[i], pn[i],
						   hv && !hn[i] ? hv[i] : (Datum) 0, !hv || hn[i]);
		idd = UUIDPGetDatum(id);
		tuplestore_putvalues(store, desc, &idd, &idnull);
	}
	mq_direct_insert_many(&d, n, values, nulls);
	mq_direct_close(&d);
	mq_xact_relay_on_commit();
	return (Datum) 0;
}
