#include "support/certificates.hpp"

#include <filesystem>
#include <fstream>

#include "support/process.hpp"

namespace redlock::test {

namespace fs = std::filesystem;

const test_certs& certs() {
  static const test_certs c = [] {
    test_certs t;
    t.dir = make_temp_dir("redlock-certs-");  // removed at exit
    const std::string d = t.dir + "/";
    t.ca_cert = d + "ca.crt";
    t.server_cert = d + "server.crt";
    t.server_key = d + "server.key";
    t.client_cert = d + "client.crt";
    t.client_key = d + "client.key";
    t.other_ca_cert = d + "other-ca.crt";
    t.ca_dir = d + "ca-dir";

    // EC keys: generating them is fast, unlike RSA.
    auto make_ca = [&](const std::string& cert, const std::string& key, const std::string& cn) {
      run_checked({"openssl",
                   "req",
                   "-x509",
                   "-newkey",
                   "ec",
                   "-pkeyopt",
                   "ec_paramgen_curve:prime256v1",
                   "-nodes",
                   "-keyout",
                   key,
                   "-out",
                   cert,
                   "-days",
                   "3650",
                   "-subj",
                   "/CN=" + cn,
                   "-addext",
                   "basicConstraints=critical,CA:TRUE",
                   "-addext",
                   "keyUsage=critical,keyCertSign,cRLSign"});
    };
    make_ca(t.ca_cert, d + "ca.key", "redlock test CA");
    make_ca(t.other_ca_cert, d + "other-ca.key", "redlock unrelated CA");

    auto make_leaf = [&](const std::string& name, const std::string& cn, const std::string& ext) {
      const std::string ext_path = d + name + ".ext";
      {
        std::ofstream e(ext_path);
        e << ext;
      }
      run_checked({"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", d + name + ".key", "-out",
                   d + name + ".csr", "-subj", "/CN=" + cn});
      run_checked({"openssl", "x509", "-req", "-in", d + name + ".csr", "-CA", t.ca_cert, "-CAkey",
                   d + "ca.key", "-CAcreateserial", "-out", d + name + ".crt", "-days", "3650",
                   "-extfile", ext_path});
    };
    make_leaf("server", "localhost",
              "basicConstraints=CA:FALSE\n"
              "keyUsage=critical,digitalSignature,keyEncipherment\n"
              "extendedKeyUsage=serverAuth,clientAuth\n"
              "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n");
    make_leaf("client", "redlock test client",
              "basicConstraints=CA:FALSE\n"
              "keyUsage=critical,digitalSignature,keyEncipherment\n"
              "extendedKeyUsage=clientAuth\n");

    // The client key again, encrypted: for key passphrases.
    t.encrypted_client_key = d + "client-encrypted.key";
    t.client_key_passphrase = "redlock-test-key-passphrase";
    run_checked({"openssl", "pkey", "-in", t.client_key, "-aes256", "-passout",
                 "pass:" + t.client_key_passphrase, "-out", t.encrypted_client_key});

    // A c_rehash-style directory holding only the test CA.
    fs::create_directories(t.ca_dir);
    fs::copy_file(t.ca_cert, t.ca_dir + "/ca.crt");
    run_checked({"openssl", "rehash", t.ca_dir});
    return t;
  }();
  return c;
}

}  // namespace redlock::test
