/*-------------------------------------------------------------------------
 *
 * topic.c
 *	  C support for topics: Kafka's murmur2 partitioner.
 *
 * Topics, groups and exchanges themselves are SQL (see mq--0.1.0.sql);
 * publishing is in outbox.c, the consumer side in fetch.c, the relay in
 * relay.c.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"


PG_FUNCTION_INFO_V1(mq_murmur2);


/*
 * mq_murmur2_bytes
 *		MurmurHash2 (32-bit) exactly as Kafka's default partitioner computes
 *		it: seed 0x9747b28c, little-endian 4-byte blocks, signed result.
 */
int32
mq_murmur2_bytes(const unsigned char *data, int len)
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

	PG_RETURN_INT32(mq_murmur2_bytes((const unsigned char *) VARDATA_ANY(b),
									VARSIZE_ANY_EXHDR(b)));
}
