//! `-` / `stdio:`: standard input and output as one byte-stream connection.

use super::ByteConn;

pub fn open() -> ByteConn {
    ByteConn {
        reader: Box::new(tokio::io::stdin()),
        writer: Box::new(tokio::io::stdout()),
        label: "stdio".into(),
    }
}
