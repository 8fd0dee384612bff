//! `bus_schema::control` frames on QUIC streams.

use bus_schema::control::{FrameError, encode_frame, frame_len};

/// Errors of reading or writing a frame.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The frame itself is bad (too large, cut short, malformed).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream failed (reset, connection lost).
    #[error("read: {0}")]
    Read(#[from] quinn::ReadError),
    /// Writing failed (the peer stopped reading, connection lost).
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
    /// Opening a stream failed (connection lost).
    #[error("open a stream: {0}")]
    Open(#[from] quinn::ConnectionError),
}

/// Reads one frame of at most `max` bytes; `None` when the peer finished
/// the stream cleanly before a frame began.
pub async fn read<M: prost::Message + Default>(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Result<Option<M>, StreamError> {
    let mut prefix = [0u8; 4];
    match recv.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(quinn::ReadExactError::FinishedEarly(got)) => {
            return Err(FrameError::Truncated { got, want: 4 }.into());
        }
        Err(quinn::ReadExactError::ReadError(e)) => return Err(e.into()),
    }
    let len = frame_len(prefix, max)?;
    let mut body = vec![0u8; len];
    match recv.read_exact(&mut body).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(got)) => {
            return Err(FrameError::Truncated {
                got: 4 + got,
                want: 4 + len,
            }
            .into());
        }
        Err(quinn::ReadExactError::ReadError(e)) => return Err(e.into()),
    }
    Ok(Some(M::decode(body.as_slice()).map_err(FrameError::from)?))
}

/// Writes one frame.
pub async fn write<M: prost::Message>(
    send: &mut quinn::SendStream,
    m: &M,
) -> Result<(), StreamError> {
    send.write_all(&encode_frame(m)).await?;
    Ok(())
}
