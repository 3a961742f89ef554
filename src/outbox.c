/*-------------------------------------------------------------------------
 *
 * outbox.c
 *	  The outbox write buffer: rows of mq.publish() calls collected in
 *	  memory and written in one multi-row insert at the end of the
 *	  statement.
 *
 * An application that publishes many messages in one statement (or one
 * plpgsql loop body) calls mq.publish once per message.  One-row inserts
 * write a WAL record per row and per index entry; buffering the rows and
 * writing them with the table AM's multi-insert writes one per heap page,
 * which is what limits publishing under synchronous commit.
 *
 * Everything about a message that its caller can observe is settled when
 * mq.publish returns: the destination check, the key lock, the event id
 * and the relay order (seq).  Only the heap and index writes wait, and not
 * beyond the end of the statement that called mq.publish: the buffer is
 * written when any executor run ends (so the next statement of the
 * transaction sees the rows, as it would see an INSERT's), before a
 * subtransaction commits (so the rows carry its xid), before the
 * transaction commits or prepares, and whenever it holds
 * MQ_OUTBOX_BUFFER_ROWS rows or MQ_OUTBOX_BUFFER_BYTES of values.  Rows of
 * a subtransaction that aborts are dropped with it; an aborting
 * transaction drops all.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "access/detoast.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "utils/datum.h"
#include "utils/memutils.h"

/* rows, and bytes of their values, held before they are written anyway */
#define MQ_OUTBOX_BUFFER_ROWS 1000
#define MQ_OUTBOX_BUFFER_BYTES (8 * 1024 * 1024)

/*
 * mq.outbox as publish and publish_batch write it (Debezium's columns plus
 * the relay order), every column given.
 */
MqDirectRel mq_rel_outbox = {
	"outbox", MQ_OUTBOX_NCOLS,
	{"id", "aggregatetype", "aggregateid", "type", "payload", "headers",
	"created_at", "seq"}
};

typedef struct MqOutboxBuffer
{
	MemoryContext cxt;			/* child of TopTransactionContext */
	int			nrows;
	Size		nbytes;			/* of the variable-length values held */
	int			nestlevel[MQ_OUTBOX_BUFFER_ROWS];	/* of the adding subxact */
	Datum		values[MQ_OUTBOX_BUFFER_ROWS * MQ_OUTBOX_NCOLS];
	bool		nulls[MQ_OUTBOX_BUFFER_ROWS * MQ_OUTBOX_NCOLS];
} MqOutboxBuffer;

/* NULL when empty; lives in TopTransactionContext */
static MqOutboxBuffer *mq_outbox_buffer = NULL;
static bool mq_outbox_flushing = false;

static ExecutorEnd_hook_type mq_prev_ExecutorEnd = NULL;

/*
 * mq_outbox_buffer_flush
 *		Write the buffered rows, if any, in one multi-row insert.
 */
void
mq_outbox_buffer_flush(void)
{
	MqOutboxBuffer *buf = mq_outbox_buffer;
	MqDirect	d;

	if (buf == NULL || mq_outbox_flushing)
		return;
	mq_outbox_flushing = true;
	PG_TRY();
	{
		if (buf->nrows > 0)
		{
			mq_direct_open(&d, &mq_rel_outbox, "mq.publish()", false);
			mq_direct_insert_many(&d, buf->nrows, buf->values, buf->nulls);
			mq_direct_close(&d);
		}
	}
	PG_FINALLY();
	{
		mq_outbox_flushing = false;
	}
	PG_END_TRY();
	mq_outbox_buffer = NULL;
	MemoryContextDelete(buf->cxt);
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
	MqOutboxBuffer *buf;
	MemoryContext oldcxt;
	int			base;
	int			i;

	if (mq_outbox_buffer != NULL &&
		(mq_outbox_buffer->nrows >= MQ_OUTBOX_BUFFER_ROWS ||
		 mq_outbox_buffer->nbytes >= MQ_OUTBOX_BUFFER_BYTES))
		mq_outbox_buffer_flush();
	if (mq_outbox_buffer == NULL)
	{
		MemoryContext cxt = AllocSetContextCreate(TopTransactionContext,
												  "mq outbox buffer",
												  ALLOCSET_DEFAULT_SIZES);

		buf = MemoryContextAlloc(cxt, sizeof(MqOutboxBuffer));
		buf->cxt = cxt;
		buf->nrows = 0;
		buf->nbytes = 0;
		mq_outbox_buffer = buf;
	}
	buf = mq_outbox_buffer;
	/* the columns' by-value-ness and lengths come from the table */
	(void) mq_direct_relid(dr);
	oldcxt = MemoryContextSwitchTo(buf->cxt);
	base = buf->nrows * MQ_OUTBOX_NCOLS;
	for (i = 0; i < MQ_OUTBOX_NCOLS; i++)
	{
		Datum		v = values[i];

		buf->nulls[base + i] = nulls[i];
		if (nulls[i])
		{
			buf->values[base + i] = (Datum) 0;
			continue;
		}
		/* a value stored elsewhere is fetched now, while it surely exists */
		if (dr->attlen[i] == -1 && VARATT_IS_EXTERNAL(DatumGetPointer(v)))
			v = PointerGetDatum(detoast_external_attr((struct varlena *) DatumGetPointer(v)));
		buf->values[base + i] = datumCopy(v, dr->attbyval[i], dr->attlen[i]);
		if (dr->attlen[i] == -1)
			buf->nbytes += VARSIZE_ANY(DatumGetPointer(buf->values[base + i]));
	}
	MemoryContextSwitchTo(oldcxt);
	buf->nestlevel[buf->nrows] = GetCurrentTransactionNestLevel();
	buf->nrows++;
}

/*
 * mq_outbox_ExecutorEnd
 *		ExecutorEnd hook: a statement (or a nested query) ended; write what
 *		it buffered, so that later statements see it.
 */
static void
mq_outbox_ExecutorEnd(QueryDesc *queryDesc)
{
	if (mq_prev_ExecutorEnd)
		mq_prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
	if (mq_outbox_buffer != NULL && IsTransactionState())
		mq_outbox_buffer_flush();
}

/*
 * mq_outbox_xact_callback
 *		Write the buffer before commit and prepare; forget it at abort (its
 *		memory goes with the transaction's).
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
			mq_outbox_buffer = NULL;
			mq_outbox_flushing = false;
			break;
	}
}

/*
 * mq_outbox_subxact_callback
 *		Write the buffer before a subtransaction commits (its rows then carry
 *		the subtransaction's xid); drop the rows of one that aborts.
 */
static void
mq_outbox_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						   SubTransactionId parentSubid, void *arg)
{
	MqOutboxBuffer *buf = mq_outbox_buffer;
	int			level;
	int			keep;

	if (event == SUBXACT_EVENT_PRE_COMMIT_SUB)
	{
		mq_outbox_buffer_flush();
		return;
	}
	if (event != SUBXACT_EVENT_ABORT_SUB || buf == NULL)
		return;
	mq_outbox_flushing = false;
	level = GetCurrentTransactionNestLevel();
	/* rows are in call order, so an aborted subxact's rows are the last */
	for (keep = buf->nrows; keep > 0 && buf->nestlevel[keep - 1] >= level; keep--)
		;
	buf->nrows = keep;
}

/*
 * mq_outbox_init
 *		Install the executor hook and transaction callbacks; from _PG_init.
 */
void
mq_outbox_init(void)
{
	mq_prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = mq_outbox_ExecutorEnd;
	RegisterXactCallback(mq_outbox_xact_callback, NULL);
	RegisterSubXactCallback(mq_outbox_subxact_callback, NULL);
}
