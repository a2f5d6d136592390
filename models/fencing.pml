/*
 * fencing.pml -- Spin model of redlock's two-phase fencing-token protocol (issue 13).
 *
 * The system: N = 3 independent nodes, quorum 2, NC clients (default 2: A and B) with
 * NA attempts each (default 2; per client NA_A, NA_B, NA_C). Each node holds, for the one
 * resource, a lock key (empty, or the value of the client that set it; it may expire, i.e.
 * vanish, at any moment) and a durable counter (starts at 0, never expires).
 *
 * An acquisition by client c (its random value v = c+1, the SAME value on every retry):
 *   phase 1  acquire(v) to every node. Node, atomically: key empty or == v ->
 *            key := v, counter := counter+1, reply GRANT(counter); else reply DENY.
 *            The client counts the replies that arrive before its timeout. >= 2 GRANTs ->
 *            t := max counter among the counted GRANTs; otherwise the attempt fails.
 *   phase 2  confirm(v, t) only to the nodes whose GRANT was counted. Node, atomically:
 *            key == v and counter <= t -> counter := t (= max(counter, t)), reply OK;
 *            else reply FAIL. >= 2 OKs before the timeout: the acquisition completes with
 *            token t; otherwise the attempt fails.
 *   failure  release(v) to every node (node: key == v -> key := empty), then retry while
 *            attempts remain.
 *
 * Properties (assert statements; the search is exhaustive):
 *   Fencing     if X completed before Y started its phase 2, token(Y) > token(X).
 *               When Y starts phase 2 it snapshots the largest token completed so far
 *               (snap[c]); when Y completes, assert t > snap[c].
 *   Uniqueness  tokens of completed acquisitions are pairwise distinct: done_mask has one
 *               bit per completed token; completing with a token whose bit is set fails.
 *   Mutual exclusion is NOT a property: with expiry it is violated (Redlock's known limit).
 *
 * Seeded variants (compile-time defines), each of which the checker must catch:
 *   -DKEY_ONLY      phase 2 checks only "key == v" (counter := max(counter, t) as before).
 *   -DLOST_COUNTER  one node may restart once, losing its counter (back to 0) and its key.
 *   -DNO_PHASE2     token = max phase-1 counter, no phase 2 (the fencing snapshot is taken
 *                   at the decision, which is also the completion).
 * Sanity variant:
 *   -DNO_LATE       no late delivery: when a client stops waiting for a phase, the requests
 *                   of that phase still in the network are dropped (never executed later).
 *                   With -DKEY_ONLY this must HOLD: the KEY_ONLY bug needs a late request,
 *                   as the design note (shared/design/fencing.md) says.
 * Witness:
 *   -DWITNESS       must be VIOLATED: asserts that no acquisition completes after another one
 *                   completed before its phase 2 began, i.e. that the premise of the fencing
 *                   property never occurs. Its violation shows the fencing assert is tested.
 * Other knobs: -DSYMM (node symmetry reduction, see below), -DPLAIN (the model without its
 *   reductions, to cross-check them), -DRELEASE (model the releases, see "Expiry"),
 *   -DNC=1..3, -DNA=1..3, -DNA_A/-DNA_B/-DNA_C (attempts of one client); 5 attempts in all
 *   at most.
 *
 * ---------------------------------------------------------------------------------------
 * The network (why there are no Promela channels)
 *
 * Promela channels are FIFO; this network loses, delays and reorders. Instead each request in
 * flight is a piece of state that a node may consume at any later step:
 *   acq_cur[c]      mask over the nodes (bit n = node n): the acquires of c's current attempt
 *                   not executed yet, while c still waits for phase-1 replies;
 *   cnf_cur[c]      the same for c's confirm(v, t_cur[c]) while c waits in phase 2;
 *   acq_old[c*3+n]  how many acquires of c to node n are late: c stopped waiting for them;
 *   cnf_old[c*3+n]  c's late confirms to node n, as a set of t values (bit t). Two late
 *                   confirm(v, t) with the same t are one: once the first ran, the counter is
 *                   >= t for good and the second can do nothing (in LOST_COUNTER the merge
 *                   only drops behaviours, and that variant is expected to fail anyway);
 *   rel_p[c*3+n]    (-DRELEASE) how many releases of c to node n are in flight.
 * A node executes any pending request addressed to it, in any order:
 *   - loss of a request: the request simply never gets executed; no explicit drop step.
 *   - late delivery: when the client stops waiting (its phase timed out), what it sent in
 *     that phase and was not executed moves to acq_old / cnf_old and can still run later,
 *     also after the client's next attempt began; its reply goes nowhere.
 *   - replies: a reply is counted only if its client still waits in that phase of that
 *     attempt, i.e. for acq_cur / cnf_cur. Each such execution comes in two versions,
 *     COUNTED and LOST (lost, or arrived after the timeout). Since the client acts only at
 *     its timeout, counting a reply at once is the same as counting it any time before.
 *   - the client's timeout is a step enabled at any moment of its phase.
 *   - a request is only executed when it changes something (a GRANT, an OK that is counted
 *     or raises the counter, a release that deletes the key). A request whose execution
 *     would change nothing (DENY, FAIL, ...) is left pending instead: the state in which it
 *     is still pending allows everything the state without it allows (it may simply never
 *     run), so no reachable violation is lost, and the no-op states are never stored.
 *   - likewise a confirm that can never change anything again is dropped (prune()): a late
 *     confirm(v, t) at a node whose counter is >= t, and (correct protocol) a current one
 *     whose t is below the node's counter, which can only FAIL. Counters never go down, so
 *     this is exact; it is off in LOST_COUNTER, where a restart lowers a counter.
 * Retries start at once when an attempt fails, and every client sends its first phase 1 at
 * time 0: sending earlier only gives the network more choices (the nodes may still execute
 * the requests as late as they like), so this loses no behaviour. Likewise phase 2 starts in
 * the step in which phase 1 times out, and an acquisition completes in the step in which its
 * phase 2 times out (the timeout may come right after the second OK).
 *
 * Expiry: a key is read only by the scripts of its own node. A key that vanishes at some
 * moment is therefore the same as one that vanishes just before the next script on that node
 * that it matters to: an acquire of another client, which the key would make DENY. So expiry
 * is folded into that step (ACQUIRE's second version: "key of the other client expires, then
 * the acquire runs"). A release(v) only ever does "key == v -> key := empty", which expiry
 * can do at any moment anyway; releases add no behaviour, only states, so they are off
 * unless -DRELEASE.
 *
 * Node symmetry (-DSYMM): see the comment above order_nodes() below.
 *
 * Processes: Client(c) -- the client's decisions at its timeouts (phase 1 -> phase 2 or fail,
 * phase 2 -> complete or fail, fail -> release and retry). Node(n) -- node n executing the
 * requests addressed to it and (LOST_COUNTER) restarting once. Every step is one d_step: the
 * node scripts are atomic, as the Lua scripts are on a real node. The printf lines (MODEL:)
 * only label trails. Clients 0, 1, 2 are A, B, C (values 1, 2, 3); nodes are 0, 1, 2.
 */

#define NN 3                      /* nodes */
#ifndef NC
#define NC 2                      /* clients */
#endif
#ifndef NA
#define NA 2                      /* attempts per client, unless set per client: */
#endif
#ifndef NA_A
#define NA_A NA                   /* attempts of client 0 (A) */
#endif
#ifndef NA_B
#define NA_B NA                   /* attempts of client 1 (B) */
#endif
#ifndef NA_C
#define NA_C NA                   /* attempts of client 2 (C) */
#endif
#define NATT(c) ((c) == 0 -> NA_A : ((c) == 1 -> NA_B : NA_C))

#define ALL 7                     /* mask of all three nodes */
#define CN(c, n) ((c) * NN + (n)) /* index of the (client, node) pair */
#define NBIT(x, i) (((x) >> (i)) & 1)

/* At least two of the three node bits of m are set. */
#define QUORUM(m) (NBIT(m, 0) + NBIT(m, 1) + NBIT(m, 2) >= 2)

/* Client phases. */
#define END    0                  /* completed, or every attempt failed: nothing more to do */
#define P1     1                  /* waiting for phase-1 replies of attempt att[c] */
#define P2     2                  /* waiting for phase-2 replies of attempt att[c] */

#if NC == 1
#define ALL_ENDED (ph[0] == END)
#elif NC == 2
#define ALL_ENDED (ph[0] == END && ph[1] == END)
#else
#define ALL_ENDED (ph[0] == END && ph[1] == END && ph[2] == END)
#endif

/* ---- node state ---- */
byte key[NN];                     /* 0 = empty, c+1 = client c's value */
byte ctr[NN];                     /* durable counter */
bit restarted;                    /* LOST_COUNTER: the one restart has happened */

/* ---- requests in the network (see the header) ---- */
byte acq_cur[NC];
byte cnf_cur[NC];
byte acq_old[NC * NN];
short cnf_old[NC * NN];
#ifdef RELEASE
byte rel_p[NC * NN];
#endif

/* ---- client state ---- */
byte ph[NC];                      /* END, P1 or P2 */
byte att[NC];                     /* current attempt, 0-based */
byte gm[NC];                      /* phase 1: nodes whose GRANT was counted */
byte tm[NC];                      /* phase 1: max counter among the counted GRANTs */
byte t_cur[NC];                   /* phase 2: the t sent in the confirms */
byte om[NC];                      /* phase 2: nodes whose OK was counted */
byte snap[NC];                    /* phase 2: max completed token when phase 2 started */

/* ---- completed acquisitions ---- */
short done_mask;                  /* bit t set: an acquisition completed with token t */
byte done_max;                    /* largest completed token (0: none yet) */

/* Bounds: a counter grows by 1 per acquire and otherwise only to some t, which is a value
 * some counter had; so no counter exceeds the number of acquires executed, 3 per attempt:
 * 12 in the default setting (2 clients x 2 attempts), 15 at most with the 5 attempts in all
 * that init allows. Tokens are bits of the 16-bit masks done_mask and cnf_old, and
 * grant() asserts ctr < 16, so a setting that went past the bound would fail loudly. */

hidden byte tmp_b;                /* scratch of the d_steps, not part of the state vector */
hidden short tmp_s;
hidden byte q;
hidden byte lo;
hidden byte lt;
hidden byte si;
hidden byte sj;

/* ---- canonical states ---- */

/* A client that can still start a phase 2 (and so take a snapshot of done_max). */
#define MAY_SNAP(c) (ph[c] == P1 || (ph[c] == P2 && att[c] + 1 < NATT(c)))
#if NC == 1
#define ANY_MAY_SNAP MAY_SNAP(0)
#elif NC == 2
#define ANY_MAY_SNAP (MAY_SNAP(0) || MAY_SNAP(1))
#else
#define ANY_MAY_SNAP (MAY_SNAP(0) || MAY_SNAP(1) || MAY_SNAP(2))
#endif

/* Drop what can never matter again, so that states differing only in it are one state. */
inline prune() {
#ifndef PLAIN
#ifndef LOST_COUNTER
  /* confirms that can never change anything again (see the header) */
  for (q : 0 .. NC * NN - 1) {
    cnf_old[q] = cnf_old[q] & ~((2 << ctr[q % NN]) - 1);       /* late, t <= counter */
#ifndef KEY_ONLY
    if                                                         /* current, t < counter */
    :: NBIT(cnf_cur[q / NN], q % NN) && t_cur[q / NN] < ctr[q % NN] ->
       cnf_cur[q / NN] = cnf_cur[q / NN] & ~(1 << (q % NN))
    :: else -> skip
    fi
#endif
  }
#endif
  /* A completed token b matters to a later completion only if that completion's snapshot is
   * below b (otherwise the fencing assert already covers it): only for clients in phase 2
   * with snap < b, since a future phase 2 snapshots done_max >= b. */
  lo = 255;
  for (q : 0 .. NC - 1) {
    if
    :: ph[q] == P2 && snap[q] < lo -> lo = snap[q]
    :: else -> skip
    fi
  }
  if
  :: lo == 255 -> done_mask = 0
  :: else -> done_mask = done_mask & ~((2 << lo) - 1)
  fi;
  /* done_max matters only to a client that may still start a phase 2. */
  if
  :: ANY_MAY_SNAP -> skip
  :: else -> done_max = 0
  fi;
  q = 0; lo = 0
#else
  skip
#endif
}

/* Node symmetry (-DSYMM). The three nodes are interchangeable: the protocol treats them
 * alike, a quorum is any two, and the asserts name no node. A state and the same state with
 * the nodes renamed have the same futures, so storing one of them is enough. With -DSYMM
 * every step ends by renaming the nodes so that their signatures (key, counter, and for each
 * client the node's bit in acq_cur, cnf_cur, gm, om and its acq_old count) ascend. Renaming
 * moves all of a node's data: key, counter, its bit in every mask, its acq_old, cnf_old and
 * rel_p entries. Nodes with equal signatures may still differ in cnf_old; two equivalent
 * states may then both be stored, which costs states but stays exact. The Node processes
 * hold nothing but their n, so they need no renaming. A trail of a -DSYMM run renames the
 * nodes as it goes; the traces in models/README.md come from runs without it. */
#define CSIG(i, c) (NBIT(acq_cur[c], i) + 2 * NBIT(cnf_cur[c], i) + 4 * NBIT(gm[c], i) + \
                    8 * NBIT(om[c], i) + 16 * acq_old[CN(c, i)])
#if NC == 1
#define SIG(i) (key[i] * 32 + ctr[i] + 128 * CSIG(i, 0))
#elif NC == 2
#define SIG(i) (key[i] * 32 + ctr[i] + 128 * CSIG(i, 0) + 8192 * CSIG(i, 1))
#else
#define SIG(i) (key[i] * 32 + ctr[i] + 128 * CSIG(i, 0) + 8192 * CSIG(i, 1) + \
                524288 * CSIG(i, 2))
#endif

inline swap_bits(x, i, j) {
  if
  :: NBIT(x, i) != NBIT(x, j) -> x = x ^ ((1 << i) | (1 << j))
  :: else -> skip
  fi
}

inline swap_client_data(c, i, j) {
  swap_bits(acq_cur[c], i, j);
  swap_bits(cnf_cur[c], i, j);
  swap_bits(gm[c], i, j);
  swap_bits(om[c], i, j);
  tmp_b = acq_old[CN(c, i)]; acq_old[CN(c, i)] = acq_old[CN(c, j)]; acq_old[CN(c, j)] = tmp_b;
  tmp_s = cnf_old[CN(c, i)]; cnf_old[CN(c, i)] = cnf_old[CN(c, j)]; cnf_old[CN(c, j)] = tmp_s;
#ifdef RELEASE
  tmp_b = rel_p[CN(c, i)]; rel_p[CN(c, i)] = rel_p[CN(c, j)]; rel_p[CN(c, j)] = tmp_b;
#endif
}

/* Swap the names of nodes i and j if i's signature is the greater. */
inline order_nodes(i, j) {
  if
  :: SIG(i) > SIG(j) ->
     tmp_b = key[i]; key[i] = key[j]; key[j] = tmp_b;
     tmp_b = ctr[i]; ctr[i] = ctr[j]; ctr[j] = tmp_b;
     swap_client_data(0, i, j);
#if NC > 1
     swap_client_data(1, i, j);
#endif
#if NC > 2
     swap_client_data(2, i, j);
#endif
     tmp_b = 0; tmp_s = 0
  :: else -> skip
  fi
}

/* Every step ends with tidy(). */
inline tidy() {
  prune();
#ifdef SYMM
  /* sort the three by compare-and-swap of nodes (0,1), (1,2), (0,1) */
  for (q : 0 .. 2) {
    si = (q == 1 -> 1 : 0);
    sj = si + 1;
    order_nodes(si, sj)
  }
  q = 0; si = 0; sj = 0
#else
  skip
#endif
}

/* ---- node scripts ---- */

/* How a request is executed: its client still waits for it and counts the reply (COUNTED),
 * still waits but the reply is lost or comes after the timeout (LOST), or the client had
 * stopped waiting for it already (LATE). */
mtype = { COUNTED, LOST, LATE }

/* acquire(v = c+1) at node n is granted: the key is free or ours. */
inline grant(n, c, how) {
  key[n] = c + 1;
  ctr[n]++;
  assert(ctr[n] < 16);
  printf("MODEL: node %d runs acquire of %c (%e): GRANT(%d)\n", n, 65 + c, how, ctr[n]);
  if
  :: how == COUNTED ->
     gm[c] = gm[c] | (1 << n);
     if
     :: ctr[n] > tm[c] -> tm[c] = ctr[n]
     :: else -> skip
     fi
  :: else -> skip
  fi
}

/* confirm(v = c+1, t) at node n answers OK. */
inline confirm_ok(n, c, t, how) {
  if
  :: ctr[n] < t -> ctr[n] = t
  :: else -> skip
  fi;
  printf("MODEL: node %d runs confirm(t=%d) of %c (%e): OK, counter %d\n",
         n, t, 65 + c, how, ctr[n]);
  if
  :: how == COUNTED -> om[c] = om[c] | (1 << n)
  :: else -> skip
  fi
}

#define ACQ_GRANTS(n, c)  (key[n] == 0 || key[n] == (c) + 1)
#define ACQ_EXPIRES(n, c) (key[n] != 0 && key[n] != (c) + 1)
#ifdef KEY_ONLY
#define CNF_OK(n, c, t)   (key[n] == (c) + 1)                 /* seeded bug: no counter check */
#else
#define CNF_OK(n, c, t)   (key[n] == (c) + 1 && ctr[n] <= (t))
#endif

/* An acquire of client c at node n: pending says it is in flight, take removes it from the
 * network. Second version: the other client's key expires just before. (Macros, since an
 * inline cannot start with "::".) */
#ifndef PLAIN
#define ACQUIRE(n, c, pending, take, how) \
  :: d_step { (pending) && ACQ_GRANTS(n, c) -> take; grant(n, c, how); tidy() } \
  :: d_step { (pending) && ACQ_EXPIRES(n, c) -> \
       printf("MODEL: node %d: key of %c expires\n", n, 64 + key[n]); \
       key[n] = 0; take; grant(n, c, how); tidy() }

/* A confirm(v = c+1, t) of client c at node n that answers OK and changes something. */
#define CONFIRM(n, c, t, pending, take, how) \
  :: d_step { (pending) && CNF_OK(n, c, t) && (how == COUNTED || ctr[n] < (t)) -> \
       take; confirm_ok(n, c, t, how); tidy() }
#else
/* -DPLAIN: the model without its reductions, to cross-check them on small settings: every
 * pending request may run, also when it changes nothing (DENY, FAIL); expiry is a step of
 * its own (in Node); nothing is pruned (see prune and quiesce). */
#define ACQUIRE(n, c, pending, take, how) \
  :: d_step { (pending) -> take; \
       if \
       :: ACQ_GRANTS(n, c) -> grant(n, c, how) \
       :: else -> skip \
       fi; \
       tidy() }
#define CONFIRM(n, c, t, pending, take, how) \
  :: d_step { (pending) -> take; \
       if \
       :: CNF_OK(n, c, t) -> confirm_ok(n, c, t, how) \
       :: else -> skip \
       fi; \
       tidy() }
#endif

/* Late confirms. Client c has at most one late confirm to node n per attempt, so at most 3,
 * kept as a set of t values. Step k runs the one with the k-th lowest t (k = 1, 2, 3; HASk:
 * the set has k values or more). take_late(n, c, k) puts that t into lt and removes it. */
#define HAS1(x) ((x) != 0)
#define HAS2(x) (((x) & ((x) - 1)) != 0)
#define HAS3(x) ((((x) & ((x) - 1)) & (((x) & ((x) - 1)) - 1)) != 0)

inline take_late(n, c, k) {
  lt = 0;
  q = 0;
  do
  :: NBIT(cnf_old[CN(c, n)], lt) ->
     q++;
     if
     :: q == k -> break
     :: else -> lt++
     fi
  :: else -> lt++
  od;
  cnf_old[CN(c, n)] = cnf_old[CN(c, n)] & ~(1 << lt);
  q = 0
}

/* Without PLAIN, a late confirm runs only where it can change something: the key must be
 * ours (and prune() already dropped every t <= counter, except in LOST_COUNTER, where a late
 * confirm may still find nothing to do). */
#ifndef PLAIN
#define LATE_CONFIRM(n, c, k) \
  :: d_step { HAS##k(cnf_old[CN(c, n)]) && key[n] == (c) + 1 -> \
       take_late(n, c, k); \
       if \
       :: CNF_OK(n, c, lt) && ctr[n] < lt -> confirm_ok(n, c, lt, LATE) \
       :: else -> skip \
       fi; \
       lt = 0; \
       tidy() }
#else
#define LATE_CONFIRM(n, c, k) \
  :: d_step { HAS##k(cnf_old[CN(c, n)]) -> \
       take_late(n, c, k); \
       if \
       :: CNF_OK(n, c, lt) -> confirm_ok(n, c, lt, LATE) \
       :: else -> skip \
       fi; \
       lt = 0; \
       tidy() }
#endif

/* The steps of Node(n) for the requests of client c. */
inline requests_of(n, c) {
  if
  ACQUIRE(n, c, NBIT(acq_cur[c], n), acq_cur[c] = acq_cur[c] & ~(1 << n), COUNTED)
  ACQUIRE(n, c, NBIT(acq_cur[c], n), acq_cur[c] = acq_cur[c] & ~(1 << n), LOST)
  ACQUIRE(n, c, acq_old[CN(c, n)] > 0, acq_old[CN(c, n)]--, LATE)
  CONFIRM(n, c, t_cur[c], NBIT(cnf_cur[c], n), cnf_cur[c] = cnf_cur[c] & ~(1 << n), COUNTED)
  CONFIRM(n, c, t_cur[c], NBIT(cnf_cur[c], n), cnf_cur[c] = cnf_cur[c] & ~(1 << n), LOST)
  LATE_CONFIRM(n, c, 1)
  LATE_CONFIRM(n, c, 2)
  LATE_CONFIRM(n, c, 3)
#ifdef RELEASE
#ifndef PLAIN
  :: d_step { rel_p[CN(c, n)] > 0 && key[n] == c + 1 ->
       printf("MODEL: node %d runs release of %c: key deleted\n", n, 65 + c);
       rel_p[CN(c, n)]--; key[n] = 0; tidy() }
#else
  :: d_step { rel_p[CN(c, n)] > 0 ->
       rel_p[CN(c, n)]--;
       if
       :: key[n] == c + 1 -> key[n] = 0
       :: else -> skip
       fi;
       tidy() }
#endif
#endif
  fi
}

proctype Node(byte n) {
end:
  do
#ifdef PLAIN
  :: d_step { key[n] != 0 -> key[n] = 0; tidy() }                    /* EXPIRE */
#endif
#ifdef LOST_COUNTER
  :: d_step { !restarted && (key[n] != 0 || ctr[n] != 0) ->         /* RESTART, once */
       printf("MODEL: node %d restarts, losing its key (%c) and counter %d\n", n,
              (key[n] == 0 -> 45 : 64 + key[n]), ctr[n]);
       restarted = 1; key[n] = 0; ctr[n] = 0; tidy() }
#endif
  :: requests_of(n, 0)
#if NC > 1
  :: requests_of(n, 1)
#endif
#if NC > 2
  :: requests_of(n, 2)
#endif
  od
}

/* ---- client decisions (each inside one d_step) ---- */

/* Client c stops waiting for phase 1: what was not executed yet becomes late. */
inline end_phase1(c) {
#ifndef NO_LATE
  for (q : 0 .. NN - 1) {
    if
    :: NBIT(acq_cur[c], q) -> acq_old[CN(c, q)]++
    :: else -> skip
    fi
  }
  q = 0;
#endif
  acq_cur[c] = 0
}

/* Client c stops waiting for phase 2: the confirms not executed yet become late. */
inline end_phase2(c) {
#ifndef NO_LATE
  for (q : 0 .. NN - 1) {
    if
    :: NBIT(cnf_cur[c], q) -> cnf_old[CN(c, q)] = cnf_old[CN(c, q)] | (1 << t_cur[c])
    :: else -> skip
    fi
  }
  q = 0;
#endif
  cnf_cur[c] = 0
}

/* The acquisition of client c completes with token t. The two properties are checked here. */
inline complete(c, t) {
  printf("MODEL: %c completes with token %d (snapshot %d)\n", 65 + c, t, snap[c]);
  assert(t > snap[c]);                        /* fencing */
#ifdef WITNESS
  assert(snap[c] == 0);     /* fails iff a completion follows another one that completed
                             * before its phase 2: the fencing assert is not vacuous */
#endif
  assert(NBIT(done_mask, t) == 0);            /* uniqueness */
  done_mask = done_mask | (1 << t);
  if
  :: t > done_max -> done_max = t
  :: else -> skip
  fi;
  att[c] = 0;
  ph[c] = END
}

/* The current attempt of client c fails: release(v) to all nodes, retry if attempts remain. */
inline fail(c) {
#ifdef RELEASE
  rel_p[CN(c, 0)]++; rel_p[CN(c, 1)]++; rel_p[CN(c, 2)]++;
#endif
  if
  :: att[c] + 1 < NATT(c) ->
     att[c]++;
     acq_cur[c] = ALL;                        /* retry: phase 1 of the next attempt */
     ph[c] = P1;
     printf("MODEL: %c: attempt fails; attempt %d sends acquire to all nodes\n",
            65 + c, att[c] + 1)
  :: else ->
     printf("MODEL: %c: attempt fails; no attempts left\n", 65 + c);
     att[c] = 0;
     ph[c] = END
  fi
}

/* When no client waits any more, nothing can be asserted: reset all to one final state. */
inline quiesce() {
  if
#ifndef PLAIN
  :: ALL_ENDED ->
     for (q : 0 .. NN - 1) { key[q] = 0; ctr[q] = 0 }
     for (q : 0 .. NC - 1) { acq_cur[q] = 0; cnf_cur[q] = 0 }
     for (q : 0 .. NC * NN - 1) {
       acq_old[q] = 0;
       cnf_old[q] = 0;
#ifdef RELEASE
       rel_p[q] = 0;
#endif
     }
     q = 0;
     restarted = 0;
     done_mask = 0;
     done_max = 0
#endif
  :: else -> skip
  fi
}

proctype Client(byte c) {
end:
  do
  /* Phase-1 timeout (any moment): decide on the GRANTs counted so far. */
  :: d_step { ph[c] == P1 ->
       printf("MODEL: %c: phase 1 times out, GRANTs counted from nodes 0,1,2: %d%d%d\n",
              65 + c, NBIT(gm[c], 0), NBIT(gm[c], 1), NBIT(gm[c], 2));
       end_phase1(c);
       if
       :: QUORUM(gm[c]) ->
          snap[c] = done_max;                 /* fencing snapshot: phase 2 starts */
          printf("MODEL: %c: t=%d, fencing snapshot %d\n", 65 + c, tm[c], snap[c]);
#ifdef NO_PHASE2
          complete(c, tm[c]);
          snap[c] = 0
#else
          t_cur[c] = tm[c];
          cnf_cur[c] = gm[c];                 /* confirm only to the counted granters */
          ph[c] = P2
#endif
       :: else -> fail(c)
       fi;
       gm[c] = 0;
       tm[c] = 0;
       quiesce();
       tidy() }
  /* Phase-2 timeout (any moment): decide on the OKs counted so far. */
  :: d_step { ph[c] == P2 ->
       printf("MODEL: %c: phase 2 times out, OKs counted from nodes 0,1,2: %d%d%d\n",
              65 + c, NBIT(om[c], 0), NBIT(om[c], 1), NBIT(om[c], 2));
       end_phase2(c);
       if
       :: QUORUM(om[c]) -> complete(c, t_cur[c])
       :: else -> fail(c)
       fi;
       om[c] = 0;
       t_cur[c] = 0;
       snap[c] = 0;
       quiesce();
       tidy() }
  od
}

init {
  assert(NC >= 1 && NC <= 3 && NA_A >= 1 && NA_B >= 1 && NA_C >= 1 &&
         NA_A + (NC > 1 -> NA_B : 0) + (NC > 2 -> NA_C : 0) <= 5);
  atomic {
    /* Every client sends phase 1 of its first attempt at time 0. */
    ph[0] = P1; acq_cur[0] = ALL;
#if NC > 1
    ph[1] = P1; acq_cur[1] = ALL;
#endif
#if NC > 2
    ph[2] = P1; acq_cur[2] = ALL;
#endif
    run Node(0); run Node(1); run Node(2);
    run Client(0);
#if NC > 1
    run Client(1);
#endif
#if NC > 2
    run Client(2);
#endif
  }
}
