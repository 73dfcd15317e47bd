#include "cli/curve_flags.h"

#include <iostream>

#include "cli/commands.h"

namespace zb::cli {

void add_peer_curve_flags(CLI::App* cmd, PeerCurveFlags& f) {
  cmd->add_option("--curve-server-key", f.server_key,
                  "The router's CURVE public key: 40 Z85 characters or its .key file (default: none, plaintext)")
      ->envname("ZBATCH_CURVE_SERVER_KEY");
  cmd->add_option("--curve-secret", f.secret_file,
                  "This process's own CURVE key: a .key_secret file from zbatch keygen (default: none)")
      ->envname("ZBATCH_CURVE_SECRET");
  cmd->add_flag("--insecure-plaintext", f.insecure_plaintext,
                "Talk to a router off loopback without CURVE (anyone on the network can read and forge "
                "messages); logged at start-up")
      ->envname("ZBATCH_INSECURE_PLAINTEXT");
}

curve::ClientKeys peer_keys(const PeerCurveFlags& f) {
  auto keys = curve::client_keys(f.server_key, f.secret_file);
  if (!keys) fail(kExitUsage, keys.status().message());
  return *keys;
}

void add_router_curve_flags(CLI::App* cmd, RouterCurveFlags& f) {
  cmd->add_option("--curve-secret", f.secret_file,
                  "The router's CURVE key (a .key_secret file from zbatch keygen): encrypts every socket and "
                  "admits only the keys of --curve-allow (default: none, plaintext)")
      ->envname("ZBATCH_CURVE_SECRET");
  cmd->add_option("--curve-allow", f.allow_file,
                  "Allow-list of peers' public keys, one 'ROLE KEY [NAME]' per line; ROLE is worker, read, "
                  "submit, admin or store; read again when it changes (default: none)")
      ->envname("ZBATCH_CURVE_ALLOW");
  cmd->add_flag("--insecure-plaintext", f.insecure_plaintext,
                "Bind endpoints off loopback without CURVE (anyone on the network can act as a worker, "
                "submit, purge and read payloads); logged at start-up")
      ->envname("ZBATCH_INSECURE_PLAINTEXT");
}

void add_keygen_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("keygen", "Write a CURVE key pair: NAME.key (public) and NAME.key_secret (mode 0600)");
  auto name = std::make_shared<std::string>();
  auto dir = std::make_shared<std::string>(".");
  cmd->add_option("name", *name, "File name of the pair, e.g. router, worker1, store")->required();
  cmd->add_option("--dir", *dir, "Folder to write into (default: the current folder)");
  cmd->footer(
      "Examples:\n"
      "  zbatch keygen router --dir /etc/zbatch/keys\n"
      "  zbatch keygen worker1 && echo \"worker $(grep public-key worker1.key | cut -d'\"' -f2) worker1\" >> allow.list\n");
  cmd->callback([name, dir] {
    const curve::KeyPair keys = curve::generate();
    if (Status s = curve::write_certificate(*dir, *name, keys); !s) fail(kExitFailed, s.message());
    std::cout << keys.public_key << std::endl;
  });
}

}  // namespace zb::cli
