// redlock: Redlock distributed locks from the shell, the way flock(1) is used.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "child.hpp"
#include "commands.hpp"
#include "common.hpp"
#include "exit_codes.hpp"
#include "json_report.hpp"
#include "owner.hpp"

namespace redlock::cli {

namespace {

constexpr const char* environment_help =
    "Environment:\n"
    "  REDLOCK_SERVERS  comma-separated server URLs, used when no --server is given\n"
    "                   (default redis://127.0.0.1:6379); a comma followed by a scheme\n"
    "                   (redis://...) starts the next URL, so Sentinel and Cluster member\n"
    "                   lists (redis+sentinel://h1,h2/name) stay whole\n"
    "  REDLOCK_PASSWORD password for servers whose URL has none (--password-file wins);\n"
    "                   removed from run's command's environment\n"
    "  REDLOCK_TLS_KEY_PASSPHRASE  passphrase of an encrypted TLS client key\n"
    "                   (--tls-key-passphrase-file wins); removed likewise\n"
    "  REDLOCK_FENCING  1: run and acquire take fenced locks, as with --fencing (0: off)\n"
    "  REDLOCK_WAKEUP   0: no wake-up on releases, as with --no-wakeup (1: on, the default)\n"
    "  REDLOCK_FAIR     1: fair mode, as with --fair (0: off, the default)\n"
    "  REDLOCK_PREFIX   key prefix, used when no --prefix is given\n"
    "Set for run's command:\n"
    "  REDLOCK_LOCK_VALUE     the lock's value (always)\n"
    "  REDLOCK_FENCING_TOKEN  the lock's fencing token (with --fencing; removed otherwise)\n";

constexpr const char* examples_help =
    "Examples:\n"
    "  redlock run --ttl 30s --no-wait nightly-backup -- ./backup.sh --full\n"
    "  v=$(redlock acquire deploy) && ./deploy.sh && redlock release deploy --value \"$v\"\n"
    "  redlock run --fencing orders -- sh -c './write.sh --token \"$REDLOCK_FENCING_TOKEN\"'\n"
    "  redlock --fair run --wait 5m reports -- ./report.sh\n"
    "  redlock status deploy --json   (schema: docs/cli-json.md)\n"
    "  redlock status deploy >/dev/null; echo $?   (0 held, 3 free, 4 indeterminate)\n"
    "  redlock release --force deploy          # asks first; --yes in scripts\n"
    "Durations: 1500ms, 10s, 1.5s, 2m, 1h, and compounds 1m30s, 2h15m, 1s500ms (larger units\n"
    "first, each once).\n";

struct wait_flags {
  std::string wait;
  bool no_wait = false;
};

void add_wait_options(CLI::App* cmd, wait_flags& w) {
  auto* wait = cmd->add_option("--wait", w.wait,
                               "How long to keep trying while another owner holds the lock "
                               "(default 30s); a release announced by the holder wakes the "
                               "wait at once (see --no-wakeup)");
  auto* no_wait = cmd->add_flag("--no-wait", w.no_wait, "Try once; do not wait");
  wait->excludes(no_wait);
}

void add_fencing_flag(CLI::App* cmd, bool& fencing, const char* token_goes) {
  cmd->add_flag("--fencing", fencing,
                std::string("Fenced lock: get a fencing token, which grows with every "
                            "acquisition (a durable counter per resource on the servers); ") +
                    token_goes + " (default: REDLOCK_FENCING, else off)");
}

/// Fair mode cannot be combined with fencing (the library refuses it): a usage error naming
/// where each came from (flag or environment).
void check_fair_without_fencing(const global_options& g, const config& c, bool fencing,
                                bool fencing_flag) {
  if (c.settings.fair && fencing) {
    throw usage_error(fair_source(g.fair) + " and " +
                      (fencing_flag ? "--fencing" : "REDLOCK_FENCING=1") +
                      " cannot be combined: fair mode takes no fencing tokens");
  }
}

wait_options resolve_wait(const wait_flags& w) {
  wait_options out;
  out.no_wait = w.no_wait;
  if (!w.wait.empty())
    out.wait = duration_option("--wait", w.wait);
  return out;
}

std::chrono::milliseconds resolve_ttl(const std::string& text) {
  auto ttl = duration_option("--ttl", text);
  if (ttl.count() <= 0)
    throw usage_error("--ttl must be greater than 0");
  // The duration parser accepts up to 100 days (--wait may be that long); a key's TTL is
  // one signed 32-bit count of milliseconds.
  if (ttl > max_lock_ttl)
    throw usage_error("--ttl " + text + " is too long: a lock TTL is at most " +
                      std::to_string(max_lock_ttl.count()) + "ms (about 24.8 days)");
  return ttl;
}

/// CLI11 reads an argument written as "[a,b]" as the list a, b (its syntax for vectors), so
/// `redlock acquire '[deploy]'` would lock `deploy`. Such arguments are swapped for tokens
/// before parsing and put back afterwards: every argument reaches the servers verbatim.
/// A token starts with a NUL byte, which no command-line argument can contain.
class verbatim_args {
 public:
  std::vector<std::string> protect(std::vector<std::string> args) {
    for (std::size_t i = 1; i < args.size(); ++i) {
      std::string& a = args[i];
      // "--value=[x]": CLI11 splits at '=' first, then the value is read as a list.
      const auto eq = a.rfind("--", 0) == 0 ? a.find('=') : std::string::npos;
      const std::size_t from = eq == std::string::npos ? 0 : eq + 1;
      if (a.size() >= from + 2 && a[from] == '[' && a.back() == ']') {
        originals_.push_back(a.substr(from));
        a.replace(from, std::string::npos, token(originals_.size() - 1));
      }
    }
    return args;
  }
  void restore(std::string& s) const {
    for (std::size_t i = 0; i < originals_.size(); ++i) {
      const std::string t = token(i);
      for (auto pos = s.find(t); pos != std::string::npos; pos = s.find(t, pos)) {
        s.replace(pos, t.size(), originals_[i]);
        pos += originals_[i].size();
      }
    }
  }
  void restore(std::vector<std::string>& v) const {
    for (auto& s : v)
      restore(s);
  }

 private:
  static std::string token(std::size_t i) {
    return std::string(1, '\0') + "arg" + std::to_string(i) + '\0';
  }
  std::vector<std::string> originals_;
};

int real_main(int argc, char** argv) {
  // `run ... -- CMD ARGS`: everything after the first "--" is the command, verbatim.
  std::vector<std::string> head;
  std::vector<std::string> tail;
  bool has_separator = false;
  for (int i = 0; i < argc; ++i) {
    if (!has_separator && i > 0 && std::strcmp(argv[i], "--") == 0) {
      has_separator = true;
      continue;
    }
    (has_separator ? tail : head).emplace_back(argv[i]);
  }

  CLI::App app{
      "redlock: distributed locks over N independent Redis servers (the Redlock algorithm)."};
  app.name("redlock");
  // REDLOCK_VERSION is the project version, defined by tools/CMakeLists.txt.
  app.set_version_flag("--version", std::string("redlock ") + REDLOCK_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  app.footer(std::string("\n") + exit_code_help + "\n" + environment_help + "\n" + examples_help);

  global_options g;
  app.add_option("-s,--server", g.servers,
                 "Redis server URL, repeatable, or a comma list split as REDLOCK_SERVERS: "
                 "redis://[user[:password]@]host[:port][/db], rediss://... (TLS), "
                 "unix:///path.sock, redis+sentinel://h1,h2/name, redis+cluster://h1,h2")
      ->type_name("URL")
      ->allow_extra_args(false);  // one URL per --server; RESOURCE... follows
  app.add_option("--drift", g.drift, "Clock drift factor (default 0.01)")->type_name("FACTOR");
  app.add_option("--retry-delay", g.retry_delay, "Pause between attempts (default 200ms)")
      ->type_name("DURATION");
  app.add_option("--retry-jitter", g.retry_jitter, "Random +- spread of the pause (default 100ms)")
      ->type_name("DURATION");
  app.add_option("--request-timeout", g.request_timeout,
                 "Per-server answer deadline (default 200ms)")
      ->type_name("DURATION");
  app.add_option("--connect-timeout", g.connect_timeout, "Per-server connect deadline (default 1s)")
      ->type_name("DURATION");
  app.add_flag("--tls", g.tls, "Use TLS for every server (as with rediss://)");
  app.add_option("--tls-ca", g.tls_ca, "CA bundle (PEM) to verify servers")->type_name("FILE");
  app.add_option("--tls-ca-dir", g.tls_ca_dir, "Directory of hashed CA certificates")
      ->type_name("DIR");
  app.add_option("--tls-cert", g.tls_cert, "Client certificate (PEM)")->type_name("FILE");
  app.add_option("--tls-key", g.tls_key, "Client private key (PEM)")->type_name("FILE");
  app.add_option("--tls-key-passphrase-file", g.tls_key_passphrase_file,
                 "Passphrase of an encrypted --tls-key (or key= in the URL): the first line of "
                 "FILE; warns when others may read it (default: REDLOCK_TLS_KEY_PASSPHRASE)")
      ->type_name("FILE");
  app.add_option("--tls-server-name", g.tls_server_name, "Name to verify and send as SNI")
      ->type_name("NAME");
  app.add_flag("--tls-insecure", g.tls_insecure,
               "Do not verify server certificates (testing only)");
  app.add_flag("--no-wakeup", g.no_wakeup,
               "Wait by polling, not woken by announced releases; releases announce nothing "
               "(node-redlock's script) (default: REDLOCK_WAKEUP, else wake-up on)");
  app.add_flag("--fair", g.fair,
               "Fair mode: waiters get the lock in the order they began waiting; give it to "
               "release and extend of such a lock too; not with --fencing (default: "
               "REDLOCK_FAIR, else off)");
  owner_flags of;
  app.add_option("--prefix", of.prefix,
                 "Key prefix: the lock key of RESOURCE is PREFIX+RESOURCE (a namespace; no '{' "
                 "or '}') (default: REDLOCK_PREFIX, else none)")
      ->type_name("PREFIX");
  app.add_option("--owner-label", of.owner_label,
                 "Free text stored with the lock's owner metadata (shown by status)")
      ->type_name("LABEL");
  app.add_flag("--no-owner", of.no_owner,
               "Write no owner metadata (by default run and acquire store who holds the lock: "
               "host, pid, program, label, since; not for --fencing or --fair locks)");
  app.add_flag("-v,--verbose", g.verbose, "Per-server details on stderr");
  app.add_option("--password-file", g.password_file,
                 "Password for servers whose URL has none (not for sentinels): the first line "
                 "of FILE; warns when others may read it (default: REDLOCK_PASSWORD)")
      ->type_name("FILE");
  app.add_flag("--json", g.json,
               "One JSON object per invocation, errors included (schema: docs/cli-json.md): "
               "on stdout; for run on stderr, after the command exited (stdout is the "
               "command's)");

  // run
  run_args ra;
  std::string run_ttl = "10s", run_grace = "5s", run_on_lost = "term";
  wait_flags run_wait;
  auto* run = app.add_subcommand(
      "run",
      "Acquire, run a command (no shell) while extending the lock, release when it exits; "
      "exit with its exit code. Usage: redlock run [options] RESOURCE... -- CMD [ARGS...]");
  run->add_option("resources", ra.resources, "Resources (Redis keys) to lock")
      ->required()
      ->type_name("RESOURCE");
  run->add_option("--ttl", run_ttl, "Lock TTL; extended automatically (default 10s)")
      ->type_name("DURATION");
  add_wait_options(run, run_wait);
  run->add_option("--on-lost", run_on_lost,
                  "If the lock is lost while the command runs: term (SIGTERM, then SIGKILL "
                  "after --grace), kill (SIGKILL), ignore (warn only) (default term)")
      ->check(CLI::IsMember({"term", "kill", "ignore"}));
  run->add_option("--grace", run_grace, "Time between SIGTERM and SIGKILL (default 5s)")
      ->type_name("DURATION");
  bool run_fencing = false;
  add_fencing_flag(run, run_fencing, "the command gets it in REDLOCK_FENCING_TOKEN");

  // acquire
  acquire_args aa;
  std::string acq_ttl = "10s";
  wait_flags acq_wait;
  auto* acquire = app.add_subcommand(
      "acquire",
      "Acquire and print the lock value (only it, on stdout) for extend/release; with "
      "--fencing, the fencing token on a second line");
  acquire->add_option("resources", aa.resources, "Resources to lock")
      ->required()
      ->type_name("RESOURCE");
  acquire->add_option("--ttl", acq_ttl, "Lock TTL (default 10s)")->type_name("DURATION");
  add_wait_options(acquire, acq_wait);
  bool acq_fencing = false;
  add_fencing_flag(acquire, acq_fencing, "printed on a second line, after the value");

  // extend / release
  value_args ea;
  std::string ext_ttl = "10s";
  auto* extend =
      app.add_subcommand("extend", "Extend a lock acquired with `redlock acquire` to TTL from now");
  extend->add_option("resources", ea.resources, "The lock's resources")
      ->required()
      ->type_name("RESOURCE");
  extend->add_option("--value", ea.value, "The value printed by acquire")->required();
  extend->add_option("--ttl", ext_ttl, "New TTL from now (default 10s)")->type_name("DURATION");
  std::string ext_token;
  extend
      ->add_option("--fencing-token", ext_token,
                   "The token printed by `acquire --fencing` (the lock keeps it; -v shows "
                   "it)")
      ->type_name("N");

  value_args rla;
  force_args fa;
  auto* release = app.add_subcommand(
      "release",
      "Release a lock acquired with `redlock acquire` (deletes only this value); with --force, "
      "whatever value holds it");
  release->add_option("resources", rla.resources, "The lock's resources")
      ->required()
      ->type_name("RESOURCE");
  auto* release_value = release->add_option("--value", rla.value, "The value printed by acquire");
  bool force_flag = false;
  auto* release_force = release->add_flag(
      "--force", force_flag,
      "Delete whatever value holds the resources on every server, and its owner metadata, "
      "announcing the release; prints the owner removed and logs it on stderr. Asks y/N on "
      "the terminal (declined: exit 1) unless --yes; refused without --yes when stdin is not "
      "a terminal. For locks whose holder is gone: a live holder goes on believing it holds "
      "the lock until its validity ends");
  bool force_yes = false;
  release->add_flag("--yes", force_yes, "With --force: do not ask");
  release_value->excludes(release_force);

  // status
  status_args sa;
  auto* status = app.add_subcommand(
      "status",
      "Show per server the holder and TTL of the resources and the fencing counter, and the "
      "verdict");
  status->add_option("resources", sa.resources, "Resources to inspect")
      ->required()
      ->type_name("RESOURCE");

  verbatim_args verbatim;
  auto parse = [&](const std::vector<std::string>& args) {
    // CLI11 takes the arguments in reverse order, without the program name.
    const auto safe = verbatim.protect(args);
    std::vector<std::string> rev(safe.rbegin(), safe.rend() - 1);
    app.parse(rev);
  };
  try {
    parse(head);
    if (has_separator && !run->parsed()) {
      // Not `run`: "--" keeps its usual meaning (end of options), so parse it all again.
      app.clear();
      std::vector<std::string> all = head;
      all.emplace_back("--");
      all.insert(all.end(), tail.begin(), tail.end());
      parse(all);
    }
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0)
      return app.exit(e) == 0 ? exit_ok : exit_usage;
    // As app.exit() prints it, with the protected arguments shown as given.
    std::string what = e.what();
    verbatim.restore(what);
    std::fprintf(stderr, "%s\nRun with --help for more information.\n", what.c_str());
    // The parser gave up, so --json and the subcommand are read from the words as given:
    // a script that asked for JSON gets its error object.
    json_report& jr = invocation();
    for (std::size_t i = 1; i < head.size(); ++i) {
      if (head[i] == "--json")
        jr.enabled = true;
      for (const char* name : {"run", "acquire", "extend", "release", "status"}) {
        if (jr.command.empty() && head[i] == name)
          jr.command = name;
      }
    }
    jr.fail(what);
    return exit_usage;
  }

  json_report& jr = invocation();
  jr.enabled = g.json;
  for (const auto* sub : {run, acquire, extend, release, status}) {
    if (sub->parsed())
      jr.command = sub->get_name();
  }

  // Everything CLI11 stored, with the protected arguments put back.
  for (auto* v :
       {&g.servers, &ra.resources, &aa.resources, &ea.resources, &rla.resources, &sa.resources})
    verbatim.restore(*v);
  for (auto* t : {&g.retry_delay,     &g.retry_jitter,    &g.request_timeout,
                  &g.connect_timeout, &g.tls_ca,          &g.tls_ca_dir,
                  &g.tls_cert,        &g.password_file,   &g.tls_key_passphrase_file,
                  &g.tls_key,         &g.tls_server_name, &run_ttl,
                  &run_grace,         &run_wait.wait,     &acq_ttl,
                  &acq_wait.wait,     &ea.value,          &ext_ttl,
                  &ext_token,         &rla.value})
    verbatim.restore(*t);
  for (auto* t : {&of.prefix, &of.owner_label}) {
    if (*t)
      verbatim.restore(**t);
  }

  // The resolved configuration, with this part's settings (key prefix, owner metadata).
  auto configure = [&] {
    auto c = resolve(g);
    resolve_owner(of, c);
    return c;
  };
  try {
    if (run->parsed()) {
      if (!has_separator || tail.empty())
        throw usage_error("run: give the command after '--': redlock run RESOURCE... -- CMD");
      ra.command = tail;
      check_resources(ra.resources);
      ra.ttl = resolve_ttl(run_ttl);
      ra.wait = resolve_wait(run_wait);
      ra.grace = duration_option("--grace", run_grace);
      ra.on_lost = run_on_lost == "kill"     ? on_lost_policy::kill
                   : run_on_lost == "ignore" ? on_lost_policy::ignore
                                             : on_lost_policy::term;
      ra.fencing = resolve_fencing(run_fencing);
      auto c = configure();
      check_fair_without_fencing(g, c, ra.fencing, run_fencing);
      std::string program;
      for (const auto& arg : ra.command)
        program += (program.empty() ? "" : " ") + arg;
      owner_for_lock(c, of, program, ra.fencing, run_fencing ? "--fencing" : "REDLOCK_FENCING=1",
                     fair_source(g.fair));
      return cmd_run(c, ra);
    }
    if (acquire->parsed()) {
      check_resources(aa.resources);
      aa.ttl = resolve_ttl(acq_ttl);
      aa.wait = resolve_wait(acq_wait);
      aa.fencing = resolve_fencing(acq_fencing);
      auto c = configure();
      check_fair_without_fencing(g, c, aa.fencing, acq_fencing);
      owner_for_lock(c, of, "redlock acquire", aa.fencing,
                     acq_fencing ? "--fencing" : "REDLOCK_FENCING=1", fair_source(g.fair));
      return cmd_acquire(c, aa);
    }
    if (extend->parsed()) {
      check_resources(ea.resources);
      ea.ttl = resolve_ttl(ext_ttl);
      if (ea.value.empty())
        throw usage_error("--value must not be empty");
      if (extend->count("--fencing-token") > 0)
        ea.fencing_token = fencing_token_option(ext_token);
      auto c = configure();
      if (c.settings.fair && ea.fencing_token != 0)
        throw usage_error(fair_source(g.fair) +
                          " and --fencing-token cannot be combined: a fair lock has no "
                          "fencing token");
      return cmd_extend(c, ea);
    }
    if (release->parsed()) {
      check_resources(rla.resources);
      if (force_flag) {
        fa.resources = rla.resources;
        fa.yes = force_yes;
        return cmd_force_release(configure(), fa);
      }
      if (force_yes)
        throw usage_error("--yes is for release --force");
      if (release->count("--value") == 0)
        throw usage_error(
            "release needs --value VALUE (the value printed by acquire), or "
            "--force");
      if (rla.value.empty())
        throw usage_error("--value must not be empty");
      return cmd_release(configure(), rla);
    }
    if (status->parsed()) {
      check_resources(sa.resources);
      sa.json = g.json;
      return cmd_status(configure(), sa);
    }
  } catch (const exit_error& e) {
    std::fprintf(stderr, "redlock: %s\n", e.what());
    invocation().fail(e.what());
    if (e.code() == exit_usage)
      std::fputs("Run with --help for more information.\n", stderr);
    return e.code();
  }
  return exit_usage;
}

}  // namespace

}  // namespace redlock::cli

int main(int argc, char** argv) {
  // Before anything opens a descriptor: what is open now belongs to the caller and is
  // passed on to `run`'s command.
  redlock::cli::record_inherited_fds();
  int code = redlock::cli::exit_software;
  try {
    code = redlock::cli::real_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "redlock: internal error: %s\n", e.what());
    redlock::cli::invocation().fail(std::string("internal error: ") + e.what());
  }
  const auto& report = redlock::cli::invocation();
  // run's stdout is its command's: its object goes to stderr, after the command exited.
  if (report.enabled)
    report.print(report.command == "run" ? stderr : stdout, code);
  return code;
}
