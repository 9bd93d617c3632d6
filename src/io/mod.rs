//! Buffer policies shared by the local side (`relay::localio`) and the WebSocket connection
//! (`ws`): the zero-copy output queue, and the one read-size policy.

pub(crate) mod outq;
pub(crate) mod sizing;
