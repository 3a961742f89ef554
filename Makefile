# Makefile for mq (PGXS).
#
#   make                 build
#   make install         install into the server given by PG_CONFIG
#   make installcheck    pg_regress against a running server (PGHOST/PGPORT)
#   make dist            mq-<version>.tar.gz of the committed tree (git archive),
#                        installable with make && make install (PGXN layout)
#   bash test/run_tests.sh   the whole suite on a throwaway cluster

EXTENSION  = mq
MODULE_big = mq
OBJS = \
	src/mq.o \
	src/catalog.o \
	src/queue.o \
	src/spi_util.o \
	src/shmem.o \
	src/xact.o \
	src/counter.o \
	src/attempts.o \
	src/twophase.o \
	src/worker.o \
	src/topic.o \
	src/direct.o \
	src/fetch.o \
	src/outbox.o \
	src/relay.o \
	src/wait.o \
	src/acl.o

DATA = mq--0.1.0.sql mq--0.1.0--0.2.0.sql
PGFILEDESC = "mq - message broker inside PostgreSQL"

REGRESS = $(basename $(notdir $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=. --load-extension=mq

PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
	-Wno-sign-compare -Wno-cast-function-type
ifeq ($(MQ_WERROR),1)
PG_CFLAGS += -Werror
endif

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every source includes the one module header
$(OBJS): src/mq.h

# make dist: a release tarball of HEAD, mq-<default_version>.tar.gz in
# DISTDIR (default: here), with one top directory mq-<version>/.
DIST_VERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(srcdir)/mq.control)
DISTDIR ?= .
.PHONY: dist
dist:
	git -C $(srcdir) archive --format=tar.gz --prefix=mq-$(DIST_VERSION)/ \
		-o $(abspath $(DISTDIR))/mq-$(DIST_VERSION).tar.gz HEAD
