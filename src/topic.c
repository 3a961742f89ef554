/*-------------------------------------------------------------------------
 *
 * topic.c
 *	  C support for topics and the outbox: Kafka's murmur2 partitioner,
 *	  the outbox trigger that wakes the relay at commit, and the generic
 *	  wait slots that mq.fetch sleeps on.
 *
 * Topics, groups, exchanges and the relay themselves are SQL (see
 * mq--0.1.0.sql); only what needs shared memory or speed lives here.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "commands/trigger.h"
#include "common/hashfn.h"
#include "storage/lock.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

PG_FUNCTION_INFO_V1(mq_murmur2);
PG_FUNCTION_INFO_V1(mq_outbox_trigger);
PG_FUNCTION_INFO_V1(mq_outbox_check);
PG_FUNCTION_INFO_V1(mq_publish);

/* $1 destination, $2 key, $3 payload, $4 headers */
static MqStmt mq_stmt_publish = {
	"INSERT INTO mq.outbox (aggregatetype, aggregateid, payload, headers)"
	" VALUES ($1, $2, $3, $4) RETURNING id",
	4, {TEXTOID, TEXTOID, JSONBOID, JSONBOID}
};

/* $1 destination, $2 key, $3 headers: would anything receive it? */
static MqStmt mq_stmt_routable = {
	"SELECT EXISTS (SELECT 1 FROM mq._route($1, $2, $3, false))",
	3, {TEXTOID, TEXTOID, JSONBOID}
};
PG_FUNCTION_INFO_V1(mq_wait_generation);
PG_FUNCTION_INFO_V1(mq_wait_sleep);

/*
 * mq_murmur2_hash
 *		MurmurHash2 (32-bit) exactly as Kafka's default partitioner computes
 *		it: seed 0x9747b28c, little-endian 4-byte blocks, signed result.
 */
static int32
mq_murmur2_hash(const unsigned char *data, int len)
{
	const uint32 m = 0x5bd1e995;
	const int	r = 24;
	uint32		h = 0x9747b28c ^ (uint32) len;
	int			i;
	int			blocks = len / 4;

	for (i = 0; i < blocks; i++)
	{
		const unsigned char *p = data + i * 4;
		uint32		k = (uint32) p[0] | ((uint32) p[1] << 8) |
			((uint32) p[2] << 16) | ((uint32) p[3] << 24);

		k *= m;
		k ^= k >> r;
		k *= m;
		h *= m;
		h ^= k;
	}
	switch (len % 4)
	{
		case 3:
			h ^= (uint32) data[blocks * 4 + 2] << 16;
			/* FALLTHROUGH */
		case 2:
			h ^= (uint32) data[blocks * 4 + 1] << 8;
			/* FALLTHROUGH */
		case 1:
			h ^= (uint32) data[blocks * 4];
			h *= m;
	}
	h ^= h >> 13;
	h *= m;
	h ^= h >> 15;
	return (int32) h;
}

/*
 * mq_murmur2
 *		mq.murmur2(bytea) RETURNS integer
 */
Datum
mq_murmur2(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);

	PG_RETURN_INT32(mq_murmur2_hash((const unsigned char *) VARDATA_ANY(b),
									VARSIZE_ANY_EXHDR(b)));
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
 * mq_outbox_check
 *		BEFORE INSERT row trigger on mq.outbox: the destination (column
 *		aggregatetype) must be a queue, topic or exchange, and writers of one
 *		(destination, key) are serialized until commit by a transaction-level
 *		advisory lock, so that per-key relay order (by seq) is commit order.
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

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("mq._outbox_check() must be a BEFORE ROW trigger")));
	desc = RelationGetDescr(td->tg_relation);
	tup = td->tg_trigtuple;
	if (att_dest <= 0 || att_key <= 0 ||
		att_dest > desc->natts || att_key > desc->natts ||
		strcmp(NameStr(TupleDescAttr(desc, att_dest - 1)->attname), "aggregatetype") != 0 ||
		strcmp(NameStr(TupleDescAttr(desc, att_key - 1)->attname), "aggregateid") != 0)
	{
		att_dest = SPI_fnumber(desc, "aggregatetype");
		att_key = SPI_fnumber(desc, "aggregateid");
		if (att_dest <= 0 || att_key <= 0)
			elog(ERROR, "mq: mq.outbox lacks aggregatetype or aggregateid");
	}

	d = heap_getattr(tup, att_dest, desc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("aggregatetype (the destination) must not be NULL")));
	dest = DatumGetTextPP(d);
	if (mq_dest_kind(VARDATA_ANY(dest), VARSIZE_ANY_EXHDR(dest)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no queue, topic or exchange is called \"%s\"",
						text_to_cstring(dest)),
				 errhint("aggregatetype names the destination of the event.")));

	d = heap_getattr(tup, att_key, desc, &isnull);
	if (!isnull)
	{
		text	   *key = DatumGetTextPP(d);
		uint32		h;
		LOCKTAG		tag;

		h = hash_bytes((const unsigned char *) VARDATA_ANY(dest), VARSIZE_ANY_EXHDR(dest));
		h = hash_combine(h, hash_bytes((const unsigned char *) VARDATA_ANY(key),
									   VARSIZE_ANY_EXHDR(key)));
		SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 28018, h, 2);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
	}
	return PointerGetDatum(tup);
}

/*
 * mq_publish
 *		mq.publish(destination, payload, key, headers, mandatory) RETURNS
 *		uuid: write an outbox row in the caller's transaction; with
 *		mandatory, refuse a message that nothing would receive.
 */
Datum
mq_publish(PG_FUNCTION_ARGS)
{
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	text	   *dest;
	bool		isnull;
	pg_uuid_t  *id;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("destination must not be NULL")));
	dest = PG_GETARG_TEXT_PP(0);
	values[0] = PointerGetDatum(dest);
	values[1] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[1] = PG_ARGISNULL(2) ? 'n' : ' ';
	values[2] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[2] = PG_ARGISNULL(1) ? 'n' : ' ';
	values[3] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	nulls[3] = PG_ARGISNULL(3) ? 'n' : ' ';

	SPI_connect();
	if (!PG_ARGISNULL(4) && PG_GETARG_BOOL(4))
	{
		Datum		rvalues[3];
		char		rnulls[3];

		rvalues[0] = values[0];
		rvalues[1] = values[1];
		rvalues[2] = values[3];
		rnulls[0] = ' ';
		rnulls[1] = nulls[1];
		rnulls[2] = nulls[3];
		mq_stmt_exec(&mq_stmt_routable, rvalues, rnulls, 1);
		if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 1, &isnull)))
		{
			if (mq_dest_kind(VARDATA_ANY(dest), VARSIZE_ANY_EXHDR(dest)) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("no queue, topic or exchange is called \"%s\"",
								text_to_cstring(dest))));
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("message to \"%s\" with key \"%s\" is unroutable",
							text_to_cstring(dest),
							PG_ARGISNULL(2) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(2))),
					 errhint("No binding routes it to a queue or topic; bind one, or publish without mandatory.")));
		}
	}
	/* count 0: run the INSERT to its end, so its statement trigger fires */
	mq_stmt_exec(&mq_stmt_publish, values, nulls, 0);
	id = palloc(sizeof(pg_uuid_t));
	memcpy(id, DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull)),
		   sizeof(pg_uuid_t));
	SPI_finish();
	PG_RETURN_UUID_P(id);
}

/*
 * mq_wait_generation
 *		mq._wait_generation(key): the current generation of the wait slot of
 *		key (a queue id, or minus a topic id).  Read it before looking for
 *		work, then pass it to mq._wait_sleep.
 */
Datum
mq_wait_generation(PG_FUNCTION_ARGS)
{
	mq_require_shmem();
	PG_RETURN_INT64((int64) pg_atomic_read_u64(&mq_wait_slot(MyDatabaseId,
															 PG_GETARG_INT32(0))->generation));
}

/*
 * mq_wait_sleep
 *		mq._wait_sleep(key, generation, until): sleep until the slot's
 *		generation moves past generation (a commit woke it) or until.
 */
Datum
mq_wait_sleep(PG_FUNCTION_ARGS)
{
	MqWaitSlot *slot;
	uint64		generation = (uint64) PG_GETARG_INT64(1);
	TimestampTz until = PG_GETARG_TIMESTAMPTZ(2);

	mq_require_shmem();
	slot = mq_wait_slot(MyDatabaseId, PG_GETARG_INT32(0));
	ConditionVariablePrepareToSleep(&slot->cv);
	while (pg_atomic_read_u64(&slot->generation) == generation)
	{
		long		ms = (long) ((until - GetCurrentTimestamp()) / 1000);

		if (ms <= 0)
			break;
		if (ConditionVariableTimedSleep(&slot->cv, ms, PG_WAIT_EXTENSION))
			break;
	}
	ConditionVariableCancelSleep();
	PG_RETURN_VOID();
}
