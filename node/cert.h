/* atoll cert: a cluster CA and node certificates for people without a PKI
 * (peer mTLS, and the API listener's --tls-cert). */
#ifndef NODE_CERT_H
#define NODE_CERT_H

/* atoll cert ca --out DIR [--days N] [--force]: DIR/ca.key (EC P-256,
 * mode 0600) and DIR/ca.crt (self-signed, CA:TRUE, keyCertSign; 3650 days).
 * atoll cert node --ca DIR --name NAME [--san DNS-or-IP]... --out DIR
 * [--days N] [--force]: DIR/NAME.key and DIR/NAME.crt signed by DIR/ca.*
 * (serverAuth and clientAuth, the SANs given, else NAME; 365 days).
 * Existing files are never overwritten without --force. Returns the exit
 * status (0, 1 failure, 2 usage). */
int node_cert_cli(int argc, char **argv);

#endif /* NODE_CERT_H */
