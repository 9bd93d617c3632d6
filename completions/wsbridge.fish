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
complete -c wsbridge -s s -l server -d 'Server shorthand: \'ws-listen:127.0.0.1:PORT\' (or HOST:PORT) as ADDR1; the address given (default \'-\': stdin/stdout, one client, like websocat -s) is ADDR2' -r
complete -c wsbridge -l tls-cert -d 'Certificate chain (PEM) for wss-listen:' -r -F
complete -c wsbridge -l tls-key -d 'Private key (PEM: PKCS#8, RSA or EC) for wss-listen:' -r -F
complete -c wsbridge -l tls-client-ca -d 'Require client certificates signed by these CAs (PEM) on wss-listen: (mutual TLS)' -r -F
complete -c wsbridge -l server-protocol -d 'Subprotocols this server speaks, in order of preference (comma-separated). The first one the client offers is selected; a client offering only others gets HTTP 400. Without this option no subprotocol is selected' -r
complete -c wsbridge -l origin-allow -d 'Accept only WebSocket clients whose Origin is exactly this (repeatable); others get 403' -r
complete -c wsbridge -l require-header -d 'Accept only clients sending this header with this exact value (repeatable); others get 401' -r
complete -c wsbridge -l auth-token-file -d 'Accept only clients sending \'Authorization: Bearer TOKEN\', TOKEN read from FILE (compared in constant time); others get 401' -r -F
complete -c wsbridge -l max-conns -d 'Serve at most N sessions at once; further WebSocket clients get HTTP 503, further TCP and Unix clients are closed at once' -r
complete -c wsbridge -l handshake-timeout -d 'Drop a client that has not completed its TLS and HTTP handshake within this time' -r
complete -c wsbridge -l static -d 'Serve files from DIR to plain HTTP GET requests (never outside DIR)' -r -F
complete -c wsbridge -l pass-header -d 'Pass this client request header on: to exec: children as HTTP_<NAME>, and to a ws:// or wss:// upstream as is (repeatable)' -r
complete -c wsbridge -l broadcast-queue -d 'Per-client queue of broadcast: rooms, in messages; a client that falls this far behind is disconnected with Close 1013' -r
complete -c wsbridge -l exec-args -d 'Arguments for exec:PROGRAM; takes everything after it, so put it last' -r
complete -c wsbridge -l max-frame-size -d 'Largest frame accepted (e.g. 16MiB); an oversize incoming frame closes with 1009' -r
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
complete -c wsbridge -l no-console -d 'Do not serve the built-in browser console page at \'/\''
complete -c wsbridge -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wsbridge -s V -l version -d 'Print version'
