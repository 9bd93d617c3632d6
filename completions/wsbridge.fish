complete -c wsbridge -s H -l header -d 'Extra request header \'Name: value\' (repeatable). \'@FILE\' reads header lines from FILE, so tokens stay out of the process list. Values of Authorization, Cookie and similar headers are never logged' -r
complete -c wsbridge -l protocol -d 'Sec-WebSocket-Protocol to request (comma-separated list allowed)' -r
complete -c wsbridge -l origin -d 'Origin header to send' -r
complete -c wsbridge -l basic-auth -d 'HTTP basic authentication for the WebSocket handshake. Prefer the environment variable WSBRIDGE_BASIC_AUTH, which keeps the password out of the process list' -r
complete -c wsbridge -l ca-file -d 'Extra trusted CA certificates (PEM, repeatable); SSL_CERT_FILE is honoured the same way' -r -F
complete -c wsbridge -l unix-mode -d 'Permissions of the socket file made by unix-listen:, in octal (e.g. 0660)' -r
complete -c wsbridge -l close-timeout -d 'After sending Close, wait this long for the peer\'s Close while still delivering its messages (e.g. 5, 2.5, 500ms)' -r
complete -c wsbridge -l linger -d 'After local EOF, wait until no message has arrived for this long (at most --close-timeout) before sending Close. For servers that drop unsent replies as soon as they see a Close (Python websockets, Node ws): e.g. --linger 300ms' -r
complete -c wsbridge -l connect-timeout -d 'Limit for DNS + TCP connect, TLS and the WebSocket handshake, each' -r
complete -c wsbridge -l max-message-size -d 'Largest message accepted or sent (e.g. 65536, 64KiB, 64MiB). A longer incoming message closes the connection with 1009; a longer outgoing line is an error' -r
complete -c wsbridge -l generate -d 'Write the man page and shell completions into DIR and exit (for packagers)' -r -F
complete -c wsbridge -s t -l text -d 'Text mode: lines <-> text messages (the default)'
complete -c wsbridge -s b -l binary -d 'Binary mode: byte chunks <-> binary messages, bytes passed through unchanged'
complete -c wsbridge -s E -l exit-on-eof -d 'When either direction reaches EOF, end the whole session. WebSocket pairs always end this way (RFC 6455 has no half-close: local EOF sends Close); for byte-to-byte pairs (e.g. tcp-listen: to tcp:) without -E a half-close is passed on instead'
complete -c wsbridge -s n -l no-close -d 'Do not send Close when the local side reaches EOF: keep printing incoming messages until the peer closes (e.g. `echo subscribe | wsbridge -n wss://feed`)'
complete -c wsbridge -s u -l unidirectional -d 'Only copy ADDR1 -> ADDR2 (with one URL: stdin -> WebSocket). The other direction is read (pings answered) and discarded'
complete -c wsbridge -s U -l unidirectional-reverse -d 'Only copy ADDR2 -> ADDR1 (with one URL: WebSocket -> stdout). ADDR1\'s input is not read'
complete -c wsbridge -s k -l insecure -d 'Do not verify the server\'s TLS certificate (testing only)'
complete -c wsbridge -l oneshot -d 'Serve one client, then exit with that session\'s status'
complete -c wsbridge -l announce-stdout -d 'Also print the \'listening on …\' line to standard output (for scripts)'
complete -c wsbridge -s q -l quiet -d 'Only print errors'
complete -c wsbridge -s v -l verbose -d 'More log output (-v: info, -vv: debug, -vvv: trace). RUST_LOG overrides'
complete -c wsbridge -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wsbridge -s V -l version -d 'Print version'
