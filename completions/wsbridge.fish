complete -c wsbridge -s H -l header -d 'Extra request header \'Name: value\' (repeatable). \'@FILE\' reads header lines from FILE, so tokens stay out of the process list. Values of Authorization, Cookie and similar headers are never logged' -r
complete -c wsbridge -l protocol -d 'Sec-WebSocket-Protocol to request (comma-separated list allowed)' -r
complete -c wsbridge -l origin -d 'Origin header to send' -r
complete -c wsbridge -l basic-auth -d 'HTTP basic authentication for the WebSocket handshake. Prefer the environment variable WSBRIDGE_BASIC_AUTH, which keeps the password out of the process list' -r
complete -c wsbridge -l ca-file -d 'Extra trusted CA certificates (PEM, repeatable); SSL_CERT_FILE is honoured the same way' -r -F
complete -c wsbridge -l unix-mode -d 'Permissions of the socket file made by unix-listen:, in octal (e.g. 0660)' -r
complete -c wsbridge -l close-timeout -d 'After sending Close, wait this long for the peer\'s Close while still delivering its messages (e.g. 5, 2.5, 500ms)' -r
complete -c wsbridge -l linger -d 'After local EOF, hold the Close while replies may still come (many servers drop unsent replies once they see a Close). auto: until the peer has been quiet for one handshake round trip (0.25 ms to 100 ms) once every message sent has had a reply, or for 1 s while replies are missing. A duration: until nothing has arrived for that long. 0: close at once. Never longer than --close-timeout' -r
complete -c wsbridge -l connect-timeout -d 'Limit for DNS + TCP connect, TLS and the WebSocket handshake, each' -r
complete -c wsbridge -l max-message-size -d 'Largest message accepted or sent (e.g. 65536, 64KiB, 64MiB). A longer incoming message closes the connection with 1009; a longer outgoing line is an error (see --split-long) [default: 64MiB; 1MiB for what clients of ws-listen: send]' -r
complete -c wsbridge -l max-buffered -d 'Process-wide limit for the bytes of incoming messages still arriving (fragments being put together, large frames being read); a connection that would pass it is closed with 1013' -r
complete -c wsbridge -l message-timeout -d 'Close a connection (1008) whose incoming message has begun to arrive and then makes no progress for this long (0: never)' -r
complete -c wsbridge -l on-connect -d 'A message sent first on every new WebSocket connection, before any input (repeatable, in order): TEXT as a text message, or @FILE\'s contents (one trailing newline removed; text when valid UTF-8, else binary). Sent again after each --reconnect, for servers that want a subscribe or login message first. Never logged' -r
complete -c wsbridge -l deflate-window-bits -d 'permessage-deflate window (8-15, base-2 log of bytes): wsbridge\'s own, and the limit asked of the peer\'s (at 8 wsbridge sends uncompressed: zlib cannot compress with a 256-byte window). Not given: 15 for wsbridge; as a server, 12 (4 KiB) for clients that allow a limit, which bounds the memory each connection keeps' -r
complete -c wsbridge -l deflate-level -d 'zlib compression level for what wsbridge sends (1: fastest .. 9: smallest)' -r
complete -c wsbridge -l metrics -d 'Serve Prometheus metrics at http://HOST:PORT/metrics (and /healthz). Loopback only unless --metrics-public; port 0 picks one (announced on stderr)' -r
complete -c wsbridge -l log-format -d 'Log lines on stderr as text (\'LEVEL session=N: message\') or as one JSON object per line (level, target, message, and a session\'s session, peer and label; its end line adds counts, close_code and duration_ms). Secrets are left out of both. Under systemd (JOURNAL_STREAM set), text lines start with their syslog priority (<3>, <4>, <6>, <7>)' -r -f -a "text\t'Lines for people: `LEVEL session=N: message`'
json\t'One JSON object per line: level, target, message, and the session\'s fields'"
complete -c wsbridge -s s -l server -d 'Server shorthand: \'ws-listen:127.0.0.1:PORT\' (or HOST:PORT) as ADDR1; the address given (default \'-\': stdin/stdout, one client, like websocat -s) is ADDR2' -r
complete -c wsbridge -l tls-cert -d 'Certificate chain (PEM) for wss-listen:' -r -F
complete -c wsbridge -l tls-key -d 'Private key (PEM: PKCS#8, RSA or EC) for wss-listen:' -r -F
complete -c wsbridge -l tls-client-ca -d 'Require client certificates signed by these CAs (PEM) on wss-listen: (mutual TLS)' -r -F
complete -c wsbridge -l server-protocol -d 'Subprotocols this server speaks (comma-separated). The first subprotocol in the client\'s offer that is in this list is selected; a client offering only others gets HTTP 400. Without this option no subprotocol is selected' -r
complete -c wsbridge -l origin-allow -d 'Accept only WebSocket clients whose Origin is this (repeatable; compared ignoring ASCII case); others, and clients without an Origin, get 403' -r
complete -c wsbridge -l require-header -d 'Accept only clients sending this header with this exact, non-empty value (repeatable); others get 401, and a client sending it twice gets 400' -r
complete -c wsbridge -l auth-token-file -d 'Accept only clients sending \'Authorization: Bearer TOKEN\', TOKEN read from FILE (compared in constant time); others get 401' -r -F
complete -c wsbridge -l max-conns -d 'Serve at most N sessions at once; further WebSocket clients get HTTP 503, further TCP and Unix clients are closed at once [default: what the descriptor limit allows, e.g. (limit − 32) / 2 in front of tcp:]' -r
complete -c wsbridge -l threads -d 'Run a listener\'s sessions on N threads, each session on one of them from start to end [default: the CPUs this process may use (affinity, cgroup quota)]' -r
complete -c wsbridge -l backend-timeout -d 'End a session (the client gets Close 1011 "backend not reading") when its backend has taken no data for this long while some was waiting for it (0: never)' -r
complete -c wsbridge -l handshake-timeout -d 'Drop a client that has not completed its TLS and HTTP handshake within this time, or that takes nothing of a plain HTTP answer (such as a static file) for this long' -r
complete -c wsbridge -l static -d 'Serve files from DIR to plain HTTP GET and HEAD requests (never outside DIR; hidden files and directories, except .well-known, are not served)' -r -F
complete -c wsbridge -l pass-header -d 'Pass this client request header on: to exec: children as HTTP_<NAME>, and to a ws:// or wss:// upstream as is (repeatable); a client sending it twice gets 400. Not Proxy (it would set the children\'s HTTP_PROXY)' -r
complete -c wsbridge -l broadcast-queue -d 'Per-client queue of broadcast: rooms, in messages. A member whose queue stays full for 5 s while others send is disconnected with Close 1013; until then senders wait' -r
complete -c wsbridge -l broadcast-queue-bytes -d 'Per-client queue of broadcast: rooms, in bytes (as --broadcast-queue; one message is always let in)' -r
complete -c wsbridge -l broadcast-via -d 'Share broadcast: rooms with every wsbridge using this Redis (redis://[USER:PASS@]HOST:PORT[/DB] or rediss:// for TLS): each room is a Pub/Sub channel. Redis must be reachable at startup (exit 4 otherwise); later outages are survived, and what is sent meanwhile does not reach other instances' -r
complete -c wsbridge -l broadcast-via-password-file -d 'Redis password for --broadcast-via, read from a file (a systemd credential: LoadCredential=redis:… and %d/redis), instead of in the URL' -r -F
complete -c wsbridge -l broadcast-via-ca-file -d 'Trust only this CA (PEM) for a rediss:// --broadcast-via (default: the webpki roots)' -r -F
complete -c wsbridge -l broadcast-prefix -d 'Prefix of the Redis channel names of rooms: PREFIX + the request path; lets deployments share one Redis' -r
complete -c wsbridge -l exec-args -d 'Arguments for exec:PROGRAM; takes everything after it, so put it last' -r
complete -c wsbridge -l exec-dir -d 'Behind ws-listen: (in place of ADDR2), run DIR/<request path> for each client, as websocketd\'s --dir: /chat runs DIR/chat, /a/b/c runs DIR/a/b with PATH_INFO=/c. Executable regular files only, never outside DIR, no hidden names; 404 otherwise' -r -F
complete -c wsbridge -l pty-size -d 'The terminal size a --pty child sees' -r
complete -c wsbridge -l exec-stderr -d 'Where children\'s standard error goes: log (each line to wsbridge\'s log, with the session), inherit (wsbridge\'s own stderr), client (text messages to the client, prefixed by --stderr-prefix)' -r -f -a "log\t'Each line to wsbridge\'s log (info), with the session'
inherit\t'wsbridge\'s own standard error, unchanged'
client\t'Text messages to the client, each line prefixed'"
complete -c wsbridge -l stderr-prefix -d 'Prefix of the stderr lines sent with --exec-stderr client' -r
complete -c wsbridge -l pass-env -d 'Pass this variable of wsbridge\'s environment on to children (repeatable), or set it: NAME=VALUE. Children get only the CGI variables, PATH, HOME, LANG, LC_*, TZ and these' -r
complete -c wsbridge -l framing -d 'How local bytes are cut into messages [default: lines with -t, raw with -b]' -r -f -a "lines\t'One line per message (the default in text mode)'
nul\t'NUL-terminated messages'
webfs\t'9front webfs: `t`/`b`, a space, the length in 20 decimal digits, the payload'
length-prefixed\t'4-byte big-endian length (high bit set: text), then the payload'
jsonl\t'One JSON object per line: {"type":"text","data":"…"}, {"type":"binary","data":"<base64>"}'
raw\t'Each read becomes one binary message; incoming messages are written as they are'"
complete -c wsbridge -l newline-policy -d 'For lines/nul: what to do with a newline (NUL) inside an incoming message: replace it with a space, escape it (\\n, \\\\, \\r, \\0 — undone for outgoing lines), or keep it' -r -f -a "space\t'Replace it with a space (websocat\'s behaviour): one message is one line'
escape\t'Write `\\` as `\\\\`, newline as `\\n`, CR as `\\r`, NUL as `\\0`; undone for outgoing lines'
keep\t'Write it as it is (the reader sees more than one line)'"
complete -c wsbridge -l text-prefix -d 'For lines/nul: prefix incoming text messages with P; outgoing lines starting with P are sent (without P) as text' -r
complete -c wsbridge -l binary-prefix -d 'For lines/nul: prefix incoming binary messages with P; outgoing lines starting with P are sent (without P) as binary' -r
complete -c wsbridge -l max-messages -d 'Copy at most N messages ADDR1 -> ADDR2; then stop reading ADDR1 (and close, unless --max-messages-rev is still waiting for replies)' -r
complete -c wsbridge -l max-messages-rev -d 'Copy at most N messages ADDR2 -> ADDR1; then close the session' -r
complete -c wsbridge -l close-code -d 'Close code sent when the local side ends (default 1000)' -r
complete -c wsbridge -l close-reason -d 'Close reason sent when the local side ends' -r
complete -c wsbridge -l max-frame-size -d 'Largest frame (e.g. 16MiB): an oversize incoming frame closes with 1009; outgoing messages larger than this are sent in fragments of this size' -r
complete -c wsbridge -l ping-interval -d 'Send a ping this often on every WebSocket (e.g. 30, 500ms); 0 turns pings off [default: 30 for the clients of ws-listen:/wss-listen:, off otherwise]' -r
complete -c wsbridge -l ping-timeout -d 'With --ping-interval: end the session (exit 12) when nothing at all has arrived for this long after a ping [default: the ping interval]' -r
complete -c wsbridge -l reconnect-min -d 'First reconnect delay' -r
complete -c wsbridge -l reconnect-max -d 'Longest reconnect delay' -r
complete -c wsbridge -l reconnect-buffer -d 'Local input queued while reconnecting; when full, local input waits (nothing is dropped)' -r
complete -c wsbridge -l shutdown-timeout -d 'On SIGTERM/SIGINT: send Close 1001 on every WebSocket and wait this long for sessions to finish (a second signal exits at once)' -r
complete -c wsbridge -l proxy -d 'Connect WebSockets through this proxy: http://[USER:PASS@]HOST:PORT (HTTP CONNECT) or socks5://[USER:PASS@]HOST:PORT. Without it HTTPS_PROXY/HTTP_PROXY/ALL_PROXY and NO_PROXY (or lower case) are honoured; \'none\' ignores them' -r
complete -c wsbridge -l basic-auth-file -d 'Read USER:PASS for --basic-auth from FILE' -r -F
complete -c wsbridge -l header-credential -d 'Read header lines from the systemd credential NAME ($CREDENTIALS_DIRECTORY/NAME), like -H @FILE (repeatable)' -r
complete -c wsbridge -l client-cert -d 'Client certificate chain (PEM) for wss:// servers that require one (mutual TLS)' -r -F
complete -c wsbridge -l client-key -d 'Private key (PEM) of --client-cert' -r -F
complete -c wsbridge -l tls-roots -d 'Which roots to trust for wss://: the built-in Mozilla set (webpki), the operating system\'s store (system), or both; --ca-file and SSL_CERT_FILE are always added' -r -f -a "webpki\t'Mozilla\'s roots, built in (webpki-roots)'
system\t'The operating system\'s certificate store'
both\t'Both'"
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
complete -c wsbridge -l no-compress -d 'Do not compress: no permessage-deflate offer as a client, none accepted as a server'
complete -c wsbridge -l deflate-no-context-takeover -d 'Neither side refers back to earlier messages: no decompressor kept between messages, less compression of small messages'
complete -c wsbridge -l metrics-public -d 'Allow --metrics on an address other than loopback (the metrics say how busy the service is and how its clients fail)'
complete -c wsbridge -s q -l quiet -d 'Only print errors'
complete -c wsbridge -s v -l verbose -d 'More log output (-v: info, -vv: debug, -vvv: trace). RUST_LOG overrides'
complete -c wsbridge -l console -d 'Serve the built-in browser console page at \'/\' (off by default). Any web site can link a visitor there; the page sends nothing until the visitor clicks Connect and Send'
complete -c wsbridge -l no-console -d 'The console page is off unless --console is given; accepted for compatibility'
complete -c wsbridge -l pty -d 'Run exec:/sh-c: children on a pseudo-terminal (stdin and stdout), so that programs which buffer a pipe (C stdio, Python) write each line at once. No echo, TERM=dumb; input in line mode (lines up to 4095 bytes, end of input as ^D) or raw with -b'
complete -c wsbridge -s 0 -l null-terminated -d 'NUL-terminated messages (--framing nul)'
complete -c wsbridge -l base64 -d 'For lines/nul: write incoming binary messages as base64; outgoing lines that carry the --binary-prefix are base64-decoded'
complete -c wsbridge -l split-long -d 'Split an outgoing line longer than --max-message-size into several messages instead of refusing it'
complete -c wsbridge -l jsonl-events -d 'For jsonl: also write {"type":"open"}, and ping/pong events'
complete -c wsbridge -l jsonrpc -d 'Send each line \'method arg…\' as a JSON-RPC 2.0 call with increasing ids'
complete -c wsbridge -l ready-line -d 'Write \'websocket ready\' to the local side once the WebSocket is connected (as webfs does)'
complete -c wsbridge -s 1 -l one-message -d 'Send one message and receive one message, then close (--max-messages 1 --max-messages-rev 1)'
complete -c wsbridge -s L -l follow-redirects -d 'Follow HTTP redirects (301, 302, 307, 308) of the WebSocket handshake, at most 5; never from wss:// to ws:// unless --insecure'
complete -c wsbridge -l reconnect -d 'When the WebSocket drops, reconnect (exponential backoff with jitter) while the local side stays open; local input is queued meanwhile (see --reconnect-buffer)'
complete -c wsbridge -l ready-after-connect -d 'With NOTIFY_SOCKET set: send READY=1 only once the upstream WebSocket is connected (default: once listeners are bound)'
complete -c wsbridge -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wsbridge -s V -l version -d 'Print version'
