//! `-` / `stdio:`: standard input and output as one byte-stream connection.

use super::ByteConn;

pub fn open() -> ByteConn {
    ByteConn::new(
        Box::new(tokio::io::stdin()),
        Box::new(tokio::io::stdout()),
        "stdio".into(),
    )
}
