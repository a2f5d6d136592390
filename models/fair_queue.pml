/*
 * fair_queue.pml -- Spin model of redlock's fair mode: a queue of waiters per node,
 * ordered by a ticket the waiter chooses once (issue 12, part 2).
 *
 * The system: N = 3 independent nodes, quorum 2, NC clients (default 2: A and B; 3: A, B,
 * C), each doing NOPS lock operations one after the other (default 2). Every operation has
 * its own lock value v (vid 1..NC*NOPS) and its own ticket, chosen ONCE when the operation
 * starts and sent unchanged to every node on every attempt. Each node holds, for the one
 * resource, a lock key (empty or a value) and a queue: a set of live entries (v, ticket).
 *
 * acquire(v, ticket) on node n, atomically (one Lua script on a real node):
 *   add or refresh the entry (v, ticket) (idempotent); drop expired entries; GRANT (key :=
 *   v) only when the key is empty or v AND v is the head (lowest ticket) of the node's live
 *   queue; otherwise DENY.
 *   Default (the FIX, see below): the entry stays in the queue after the grant; it leaves
 *   the queue with the unlock (or the give-up), or expires.
 *   -DGRANT_REMOVES (the design as first written in the brief): the grant removes the entry.
 * The client counts GRANTs; with 2 or more before its timeout it holds the lock; otherwise
 * it releases (key := empty where it is v) but KEEPS its entries, and retries (at any time:
 * woken by a release or by its timer) with the same v and ticket; or it gives up.
 * unlock / give-up / crash: the operation ends; its keys and entries are left to expire
 * (an unlock or a cancel that is delivered removes them at once, which expiry "at any
 * moment" already covers; one that is lost leaves them to expire). The client then starts
 * its next operation, if any, with a new value and a new ticket.
 *
 * Properties (assert statements; safety search, -DSAFETY):
 *   Mutual exclusion  when a client acquires, no other client holds the lock (and the new
 *                     holder's value is the key on a quorum).
 *   Overtaking        ovt[d] counts the acquisitions by other clients since d's current
 *                     operation first had its entry live on a quorum of nodes (while d still
 *                     waits); assert ovt[d] <= K. K defaults to NC - 1 (see models/README.md);
 *                     -DOVT_K=... sets it (NC - 2 must be violated: the bound is tight).
 * Liveness (-DLIVE, compiled with -DNP and searched with ./pan -l -f): no fair non-progress
 *   cycle. Every operation ends (acquires, or its client gives up) in every fair run, so
 *   any fair infinite run is a run in which some client keeps trying and nobody acquires any
 *   more: the property "if some client keeps trying, some client eventually acquires". The
 *   progress label marks acquisitions. Fairness (see "Fairness" below): Spin's weak
 *   fairness (-f) and a finite budget of losses (LOSS, default 2).
 *
 * Seeded bug and other variants (compile-time defines):
 *   -DNODE_TICKETS   each node orders its queue by its own arrival order (the entry added
 *                    last is last), not by the client's ticket. Liveness must be VIOLATED:
 *                    two clients each head on one node, neither reaches a quorum, forever.
 *   -DGRANT_REMOVES  the grant removes the entry (see above): the overtaking bound is
 *                    violated (a waiter whose grants are lost is overtaken again and again).
 *   -DSKEW           a new operation may choose a ticket lower than every ticket in use (a
 *                    client whose clock is behind): the overtaking bound is violated.
 *   -DACTIVE_EXPIRY  the entries of a client that is still waiting may expire too (all its
 *                    refreshes were lost for a lease): the overtaking bound is violated.
 *   -DDOWN           node 2 is down for the whole run (never answers); Redlock tolerates it.
 *   -DNC=2|3, -DNOPS=1|2, -DOVT_K=..., -DLOSS=... (liveness: loss budget).
 *
 * ---------------------------------------------------------------------------------------
 * How it is modeled
 *
 * No channels. A request in flight is a bit: pend[c] has bit n while c's acquire of its
 * current attempt has not run on node n yet; it may run at any step (a step of Client(c)).
 * A request that never runs is a lost request (the enqueue reached only some nodes). The
 * timeout is a client step enabled at any moment of the attempt (safety) -- what has not run
 * by then is lost (no
 * late delivery: requests of one client to one node travel on one connection, in order, and
 * the model does not let an acquire of an old attempt overtake the next one). A GRANT runs
 * in two versions: its reply is COUNTED, or LOST (lost, or arrived after the timeout).
 *
 * Expiry, at any moment:
 *   - a key vanishes unless its client holds the lock with it, or is in the attempt that was
 *     granted it on that node (a holder's validity; the pause of a holder past its validity
 *     breaks mutual exclusion in Redlock and in this model alike, and is not modeled). So the
 *     key of a failed attempt (release delivered or lost), of an ended operation (unlock
 *     delivered or lost, crash) may vanish at any moment.
 *   - an entry vanishes unless its client's operation is still waiting (TRY or WAIT) -- the
 *     waiter refreshes it on every attempt -- or, with -DACTIVE_EXPIRY, at any moment.
 * The safety search folds expiry into the acquire that it matters to (as fencing.pml does):
 * the only reader of node n's key and entries is an acquire on node n, and what may expire
 * stays free to expire until it does, so expiring it just before the next acquire on n whose
 * outcome it changes is the same as expiring it at any earlier moment. The acquire then runs
 * in a second version: the foreign key and every entry ahead of the caller expire, and it
 * GRANTs (this is the least that makes it GRANT; all of them must be free to expire).
 * -DPLAIN instead runs an Expirer(n) process that expires one key or entry at any moment,
 * to cross-check the folding. A DENY that changes nothing (the entry was live already) is
 * not executed in the safety search: the state in which the request is still pending
 * allows everything the state without it does (it may still be lost). In the liveness
 * search every request runs, and expiry is the Expirer processes' (see "Fairness").
 *
 * Fairness (-DLIVE). Spin's weak fairness (-f): a process that stays enabled eventually
 * moves. The processes are Client(c), KeyExpirer(n) and EntryExpirer(n); the acquires of an
 * attempt are steps of their client's process (the node runs them in any order, interleaved
 * with the other clients' steps), so: a client with requests in flight has them run, a
 * waiting client retries or gives up, a holder eventually unlocks (or crashes), and a key or
 * an entry that may expire eventually does (the entries of a node that may expire expire
 * together: one lease passes). Losses are finite: at most LOSS losses in the whole run,
 * where a loss is a GRANT whose reply is lost, a timeout while some request of the attempt
 * has not run, or a lost release after a failed attempt (without -DLIVE that release is
 * left to expiry at any moment, which covers both). Once the budget is spent every attempt
 * waits for all its replies. Without a budget a network that loses every reply defeats any
 * protocol, so the property is "after finitely many losses".
 *
 * Tickets: the first operations of A, B, C start at time 0 with tickets 1, 2, 3 (A first:
 * the clients are interchangeable when they have the same NOPS); every later operation takes
 * a ticket above every ticket chosen before it (a global clock; -DSKEW drops that).
 * Clients 0, 1, 2 are A, B, C; a value is printed as A1 (A's first operation), B2, ...
 */

#define NN 3                      /* nodes */
#ifndef NC
#define NC 2                      /* clients */
#endif
#ifndef NOPS
#define NOPS 2                    /* lock operations per client */
#endif
#ifndef OVT_K
#define OVT_K (NC - 1)                /* overtaking bound asserted */
#endif
#ifndef LOSS
#define LOSS 2                    /* -DLIVE: losses in the whole run */
#endif
#ifndef NOPS_A
#define NOPS_A NOPS               /* operations of A (at most NOPS) */
#endif
#define NOPS_OF(c) ((c) == 0 -> NOPS_A : NOPS)
#define NV (NC * NOPS)            /* values 1..NV */

#ifdef DOWN
#define UP 3                      /* nodes 0 and 1 answer, node 2 is down */
#else
#define UP 7
#endif

#define NBIT(x, i) (((x) >> (i)) & 1)
#define QUORUM(m) (NBIT(m, 0) + NBIT(m, 1) + NBIT(m, 2) >= 2)
#define VID(c) ((c) * NOPS + o[c] + 1)          /* value of c's current operation */
#define OWNER(v) (((v) - 1) / NOPS)
#define OPOF(v) (((v) - 1) % NOPS)

/* Client phases. */
#define END  0                    /* no operation left */
#define TRY  1                    /* an attempt is in flight */
#define WAIT 2                    /* between attempts: entries kept, will retry or give up */
#define HOLD 3                    /* holds the lock */

/* ---- node state ---- */
byte key[NN];                     /* 0 = empty, else a value */
byte ent[NN];                     /* bit v: the entry of value v is live on the node */
#ifdef NODE_TICKETS
byte rk[NN * (NV + 1)];           /* the node's own order: rank of v's entry (1 = head) */
#define ORD(n, v) rk[(n) * (NV + 1) + (v)]
#else
byte tk[NV + 1];                  /* ticket of value v, the same on every node */
byte next_tk;
#define ORD(n, v) tk[v]
#endif

/* ---- client state ---- */
byte ph[NC];                      /* END, TRY, WAIT, HOLD */
byte o[NC];                       /* current operation, 0-based */
byte pend[NC];                    /* TRY: nodes whose acquire has not run yet */
byte ga[NC];                      /* TRY: nodes that granted in this attempt */
byte gm[NC];                      /* TRY: nodes whose GRANT was counted */
bit qlive[NC];                    /* the current operation's entry was live on a quorum */
byte ovt[NC];                     /* acquisitions by others since qlive was set */
#ifdef LIVE
byte loss = LOSS;                 /* losses left */
#define LOSS_OK (loss > 0)
#define TAKE_LOSS loss--
#else
#define LOSS_OK 1
#define TAKE_LOSS skip
#endif

hidden byte q;                    /* scratch of the d_steps, not part of the state vector */
hidden byte w;

/* The key on node n may vanish: its client neither holds with it nor was granted it on n in
 * the attempt in flight. */
#define KEY_FREE_TO_GO(n) \
  (key[n] != 0 && \
   !(o[OWNER(key[n])] == OPOF(key[n]) && \
     (ph[OWNER(key[n])] == HOLD || (ph[OWNER(key[n])] == TRY && NBIT(ga[OWNER(key[n])], n)))))

/* The entry of value x may expire: its operation no longer waits (no more refreshes). */
#ifdef ACTIVE_EXPIRY
#define ENT_FREE_TO_GO(x) 1
#else
#define ENT_FREE_TO_GO(x) \
  (!(o[OWNER(x)] == OPOF(x) && (ph[OWNER(x)] == TRY || ph[OWNER(x)] == WAIT)))
#endif

/* NODE_TICKETS: after an entry left node n, close the gap in its ranks. */
inline renumber(n, gone) {
#ifdef NODE_TICKETS
  for (w : 1 .. NV) {
    if
    :: NBIT(ent[n], w) && ORD(n, w) > ORD(n, gone) -> ORD(n, w)--
    :: else -> skip
    fi
  }
  ORD(n, gone) = 0;
  w = 0
#else
  skip
#endif
}

/* Add value x to node n's queue, or refresh it (the same ticket: no change). */
inline enqueue(n, x) {
  if
  :: !NBIT(ent[n], x) ->
#ifdef NODE_TICKETS
     q = 0;
     for (w : 1 .. NV) {
       if
       :: NBIT(ent[n], w) -> q++
       :: else -> skip
       fi
     }
     ORD(n, x) = q + 1;           /* arrival order: behind every live entry */
     q = 0;
     w = 0;
#endif
     ent[n] = ent[n] | (1 << x)
  :: else -> skip
  fi
}

inline dequeue(n, x) {
  renumber(n, x);
  ent[n] = ent[n] & ~(1 << x)
}

/* After c's acquire ran on some node: is c's entry now live on a quorum? */
inline note_quorum(c) {
  if
  :: !qlive[c] && NBIT(ent[0], VID(c)) + NBIT(ent[1], VID(c)) + NBIT(ent[2], VID(c)) >= 2 ->
     qlive[c] = 1;
     printf("MODEL: %c%d is live on a quorum\n", 65 + c, o[c] + 1)
  :: else -> skip
  fi
}

/* When every client is done nothing can be asserted any more: one final state. */
inline quiesce() {
  if
  :: ph[0] == END && ph[1] == END && (NC < 3 || ph[NC - 1] == END) ->
     for (w : 0 .. NN - 1) { key[w] = 0; ent[w] = 0 }
#ifdef NODE_TICKETS
     for (w : 0 .. NN * (NV + 1) - 1) { rk[w] = 0 }
#else
     for (w : 0 .. NV) { tk[w] = 0 }
     next_tk = 0;
#endif
     for (w : 0 .. NC - 1) { o[w] = 0 }
     w = 0
  :: else -> skip
  fi
}

/* ---- node n: acquire(v, ticket) of client c ---- */

/* y is a live entry ahead of x on node n (once x is enqueued: with -DNODE_TICKETS a new
 * entry goes behind every live one). */
#ifdef NODE_TICKETS
#define AHEAD(n, x, y) ((y) <= NV && (y) != (x) && NBIT(ent[n], y) && \
                        (!NBIT(ent[n], x) || ORD(n, y) < ORD(n, x)))
#else
#define AHEAD(n, x, y) ((y) <= NV && (y) != (x) && NBIT(ent[n], y) && ORD(n, y) < ORD(n, x))
#endif
#define ANY_AHEAD(n, x) (AHEAD(n, x, 1) || AHEAD(n, x, 2) || AHEAD(n, x, 3) || \
                         AHEAD(n, x, 4) || AHEAD(n, x, 5) || AHEAD(n, x, 6))
#define GRANTS(n, c) ((key[n] == 0 || key[n] == VID(c)) && !ANY_AHEAD(n, VID(c)))

/* The same once every key and entry of node n that may expire has expired. */
#define STAYS_AHEAD(n, x, y) (AHEAD(n, x, y) && !ENT_FREE_TO_GO(y))
#define GRANTS_AFTER_EXPIRY(n, c) \
  ((key[n] == 0 || key[n] == VID(c) || KEY_FREE_TO_GO(n)) && \
   !(STAYS_AHEAD(n, VID(c), 1) || STAYS_AHEAD(n, VID(c), 2) || STAYS_AHEAD(n, VID(c), 3) || \
     STAYS_AHEAD(n, VID(c), 4) || STAYS_AHEAD(n, VID(c), 5) || STAYS_AHEAD(n, VID(c), 6)))

/* Expire what stands between c and a GRANT on node n: the other key, the entries ahead. */
inline expire_for(n, c) {
  if
  :: key[n] != 0 && key[n] != VID(c) ->
     printf("MODEL: node %d: key %c%d expires\n", n, 65 + OWNER(key[n]), OPOF(key[n]) + 1);
     key[n] = 0
  :: else -> skip
  fi;
  for (q : 1 .. NV) {
    if
    :: AHEAD(n, VID(c), q) ->
       printf("MODEL: node %d: entry %c%d expires\n", n, 65 + OWNER(q), OPOF(q) + 1);
       dequeue(n, q)
    :: else -> skip
    fi
  }
  q = 0
}

inline grant(n, c) {
  key[n] = VID(c);
  ga[c] = ga[c] | (1 << n);
#ifdef GRANT_REMOVES
  dequeue(n, VID(c));
#endif
}

/* The request grants (reply counted, or lost) or denies. In the safety search a DENY runs
 * only when it enqueues (otherwise it changes nothing; see the header). */
#ifdef LIVE
#define DENY_RUNS(n, c) 1
#else
#define DENY_RUNS(n, c) (!NBIT(ent[n], VID(c)))
#endif

/* The acquire of client c runs on node n and GRANTs, its reply counted or lost; cond: the
 * GRANT condition, pre: what happens just before (expiry). A macro: an inline cannot start
 * with "::". */
#define ACQ_GRANT(n, c, cond, pre) \
  :: d_step { ph[c] == TRY && NBIT(pend[c], n) && (cond) -> \
       pre; \
       pend[c] = pend[c] & ~(1 << n); \
       enqueue(n, VID(c)); \
       grant(n, c); \
       printf("MODEL: node %d runs acquire of %c%d: GRANT, counted\n", n, 65 + c, o[c] + 1); \
       gm[c] = gm[c] | (1 << n); \
       note_quorum(c) } \
  :: d_step { ph[c] == TRY && NBIT(pend[c], n) && (cond) && LOSS_OK -> \
       pre; \
       pend[c] = pend[c] & ~(1 << n); \
       enqueue(n, VID(c)); \
       grant(n, c); \
       printf("MODEL: node %d runs acquire of %c%d: GRANT, reply lost\n", n, 65 + c, \
              o[c] + 1); \
       TAKE_LOSS; \
       note_quorum(c) }

inline acquire_of(n, c) {
  if
  ACQ_GRANT(n, c, GRANTS(n, c), skip)
#if !defined(LIVE) && !defined(PLAIN)
  /* expiry folded into the acquire (see the header) */
  ACQ_GRANT(n, c, !GRANTS(n, c) && GRANTS_AFTER_EXPIRY(n, c), expire_for(n, c))
#endif
  :: d_step { ph[c] == TRY && NBIT(pend[c], n) && !GRANTS(n, c) && DENY_RUNS(n, c) ->
       pend[c] = pend[c] & ~(1 << n);
       enqueue(n, VID(c));
       printf("MODEL: node %d runs acquire of %c%d: DENY (key %d)\n", n, 65 + c, o[c] + 1,
              key[n]);
       note_quorum(c) }
  fi
}

/* ---- expiry at node n ---- */

#define EXPIRE_ENTRY(n, x) \
  :: d_step { NBIT(ent[n], x) && ENT_FREE_TO_GO(x) -> \
       printf("MODEL: node %d: entry %c%d expires\n", n, 65 + OWNER(x), OPOF(x) + 1); \
       dequeue(n, x); quiesce() }

#ifndef LIVE
/* -DPLAIN: expiry of one key or entry at a time, at any moment (the safety search folds it
 * into the acquires instead). */
proctype Expirer(byte n) {
end:
  do
  :: d_step { KEY_FREE_TO_GO(n) ->
       printf("MODEL: node %d: key %c%d expires\n", n, 65 + OWNER(key[n]), OPOF(key[n]) + 1);
       key[n] = 0; quiesce() }
  EXPIRE_ENTRY(n, 1)
  EXPIRE_ENTRY(n, 2)
  EXPIRE_ENTRY(n, 3)
#if NV > 3
  EXPIRE_ENTRY(n, 4)
#endif
#if NV > 4
  EXPIRE_ENTRY(n, 5)
  EXPIRE_ENTRY(n, 6)
#endif
  od
}
#else
/* -DLIVE: one process for node n's key, one for its entries, so that weak fairness makes
 * each expire: a key that may expire eventually does; the entries that may expire expire
 * together (one lease passes; see models/README.md). */
proctype KeyExpirer(byte n) {
end:
  do
  :: d_step { KEY_FREE_TO_GO(n) ->
       printf("MODEL: node %d: key %c%d expires\n", n, 65 + OWNER(key[n]), OPOF(key[n]) + 1);
       key[n] = 0; quiesce() }
  od
}

#define ENT_GOES(n, x) ((x) <= NV && NBIT(ent[n], x) && ENT_FREE_TO_GO(x))
proctype EntryExpirer(byte n) {
end:
  do
  :: d_step { ENT_GOES(n, 1) || ENT_GOES(n, 2) || ENT_GOES(n, 3) || ENT_GOES(n, 4) ||
              ENT_GOES(n, 5) || ENT_GOES(n, 6) ->
       for (q : 1 .. NV) {
         if
         :: ENT_GOES(n, q) ->
            printf("MODEL: node %d: entry %c%d expires\n", n, 65 + OWNER(q), OPOF(q) + 1);
            dequeue(n, q)
         :: else -> skip
         fi
       }
       q = 0;
       quiesce() }
  od
}
#endif

/* ---- clients ---- */

/* c's current operation ends (unlock, give-up or crash); start the next one, if any. Its
 * keys and entries stay until they expire (see the header). */
inline end_op(c, low) {
  qlive[c] = 0;
  ovt[c] = 0;
  pend[c] = 0;
  ga[c] = 0;
  gm[c] = 0;
  if
  :: o[c] + 1 < NOPS_OF(c) ->
     o[c]++;
#ifndef NODE_TICKETS
     if
     :: low ->                    /* -DSKEW: a ticket below every ticket in use */
        for (w : 1 .. NV) {
          if
          :: w != VID(c) && tk[w] > 0 -> tk[w]++
          :: else -> skip
          fi
        }
        w = 0;
        next_tk++;
        tk[VID(c)] = 1
     :: else ->
        next_tk++;
        tk[VID(c)] = next_tk
     fi;
#endif
     ph[c] = TRY;
     pend[c] = UP;
     printf("MODEL: %c%d starts (ticket %d): acquire to all nodes\n", 65 + c, o[c] + 1,
            ORD(0, VID(c)))
  :: else ->
     ph[c] = END
  fi;
  quiesce()
}

/* c acquires: the properties are checked here. */
inline acquired(c) {
  printf("MODEL: %c%d acquires (GRANTs counted from nodes 0,1,2: %d%d%d)\n", 65 + c,
         o[c] + 1, NBIT(gm[c], 0), NBIT(gm[c], 1), NBIT(gm[c], 2));
  for (w : 0 .. NC - 1) {
    assert(w == c || ph[w] != HOLD);                      /* mutual exclusion */
    if
    :: w != c && qlive[w] && (ph[w] == TRY || ph[w] == WAIT) ->
       ovt[w]++;
       printf("MODEL: %c%d overtaken (%d)\n", 65 + w, o[w] + 1, ovt[w]);
       assert(ovt[w] <= OVT_K)                                 /* overtaking bound */
    :: else -> skip
    fi
  }
  w = 0;
  assert((key[0] == VID(c)) + (key[1] == VID(c)) + (key[2] == VID(c)) >= 2);
  ph[c] = HOLD;
  pend[c] = 0;
  ga[c] = 0;
  gm[c] = 0
}

/* -DLIVE: the release after a failed attempt (key := empty where it is v) is delivered;
 * its loss is the second version of the step below, and costs a loss. (The safety search
 * leaves the keys of a failed attempt to expire at any moment, which covers both.) */
inline release(c) {
  for (w : 0 .. NN - 1) {
    if
    :: key[w] == VID(c) -> key[w] = 0
    :: else -> skip
    fi
  }
  w = 0
}

#ifdef LIVE
#define TIMEOUT_OK(c) (pend[c] == 0 || loss > 0)
#define TIMEOUT_LOSS(c) if :: pend[c] != 0 -> loss-- :: else -> skip fi
#else
#define TIMEOUT_OK(c) 1
#define TIMEOUT_LOSS(c) skip
#endif

proctype Client(byte c) {
end:
  do
  /* the acquire of the attempt in flight runs on node n (any order, any time) */
  :: acquire_of(0, c)
  :: acquire_of(1, c)
#ifndef DOWN
  :: acquire_of(2, c)
#endif
  /* the attempt times out (at any moment) with a quorum of counted GRANTs */
  :: d_step { ph[c] == TRY && QUORUM(gm[c]) && TIMEOUT_OK(c) ->
       TIMEOUT_LOSS(c);
       acquired(c) };
progress:
     skip
  /* ... without: release (delivered or lost: the keys are left to expire), keep the entries */
  :: d_step { ph[c] == TRY && !QUORUM(gm[c]) && TIMEOUT_OK(c) ->
       TIMEOUT_LOSS(c);
       printf("MODEL: %c%d: attempt fails (GRANTs counted from nodes 0,1,2: %d%d%d)\n",
              65 + c, o[c] + 1, NBIT(gm[c], 0), NBIT(gm[c], 1), NBIT(gm[c], 2));
#ifdef LIVE
       release(c);
#endif
       ph[c] = WAIT;
       pend[c] = 0;
       ga[c] = 0;
       gm[c] = 0 }
#ifdef LIVE
  :: d_step { ph[c] == TRY && !QUORUM(gm[c]) && loss > (pend[c] != 0 -> 1 : 0) ->
       TIMEOUT_LOSS(c);
       loss--;
       printf("MODEL: %c%d: attempt fails, release lost (GRANTs counted: %d%d%d)\n",
              65 + c, o[c] + 1, NBIT(gm[c], 0), NBIT(gm[c], 1), NBIT(gm[c], 2));
       ph[c] = WAIT;
       pend[c] = 0;
       ga[c] = 0;
       gm[c] = 0 }
#endif
  /* retry (woken by a release, or by the timer), same value and ticket */
  :: d_step { ph[c] == WAIT ->
       printf("MODEL: %c%d retries\n", 65 + c, o[c] + 1);
       ph[c] = TRY;
       pend[c] = UP }
  /* give up (cancel, or a crash): the entries are removed or left to expire */
  :: d_step { ph[c] == WAIT ->
       printf("MODEL: %c%d gives up\n", 65 + c, o[c] + 1);
       end_op(c, 0) }
  /* unlock (or crash) */
  :: d_step { ph[c] == HOLD ->
       printf("MODEL: %c%d unlocks\n", 65 + c, o[c] + 1);
       end_op(c, 0) }
#ifdef SKEW
  :: d_step { ph[c] == HOLD && o[c] + 1 < NOPS_OF(c) ->
       printf("MODEL: %c%d unlocks; the next ticket is the lowest (clock behind)\n",
              65 + c, o[c] + 1);
       end_op(c, 1) }
#endif
  od
}

init {
  assert(NC >= 2 && NC <= 3 && NOPS >= 1 && NOPS <= 2 && NOPS_A >= 1 && NOPS_A <= NOPS);
  atomic {
    /* Every client starts its first operation at time 0; tickets 1, 2, 3. */
    ph[0] = TRY; pend[0] = UP;
    ph[1] = TRY; pend[1] = UP;
#if NC > 2
    ph[2] = TRY; pend[2] = UP;
#endif
#ifndef NODE_TICKETS
    tk[VID(0)] = 1; tk[VID(1)] = 2;
#if NC > 2
    tk[VID(2)] = 3;
#endif
    next_tk = NC;
#endif
#ifdef LIVE
    run KeyExpirer(0); run KeyExpirer(1);
    run EntryExpirer(0); run EntryExpirer(1);
#ifndef DOWN
    run KeyExpirer(2); run EntryExpirer(2);
#endif
#elif defined(PLAIN)
    run Expirer(0); run Expirer(1); run Expirer(2);
#endif
    run Client(0); run Client(1);
#if NC > 2
    run Client(2);
#endif
  }
}
