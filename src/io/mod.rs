//! Buffer policies shared by the local side (`relay::localio`) and the WebSocket connection
//! (`ws`): the zero-copy output queue.

pub mod outq;
