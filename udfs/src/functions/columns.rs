//! Tensors → Arrow float columns without a copy.

use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, Float32Array, Float64Array};
use datafusion::arrow::buffer::{Buffer, ScalarBuffer};
use datafusion::error::{DataFusionError, Result};
use tch::{Device, Kind, Tensor};

/// Keeps a tensor's storage alive while Arrow buffers point into it.
struct TensorOwner(#[allow(dead_code)] Mutex<Tensor>);

/// The rows of `t` (c × n, f64 or f32) as c Arrow columns of n values that share `t`'s memory
/// when each row is contiguous (rows may lie further apart); otherwise `t` is moved to the CPU
/// and made contiguous first, which copies.
pub fn float_columns(t: Tensor) -> Result<Vec<ArrayRef>> {
    let bad = |m: String| DataFusionError::Internal(format!("float_columns: {m}"));
    if t.dim() != 2 {
        return Err(bad(format!("expected a 2-d tensor, got {:?}", t.size())));
    }
    let t = if t.device() == Device::Cpu && (t.stride()[1] == 1 || t.size()[1] <= 1) {
        t
    } else {
        t.to_device(Device::Cpu).contiguous()
    };
    let (c, n) = (t.size()[0] as usize, t.size()[1] as usize);
    let row_stride = t.stride()[0] as usize;
    let kind = t.kind();
    let elt = match kind {
        Kind::Double => 8,
        Kind::Float => 4,
        other => return Err(bad(format!("expected float64 or float32, got {other:?}"))),
    };
    if n == 0 || c == 0 {
        let empty = |_| -> ArrayRef {
            if kind == Kind::Float {
                Arc::new(Float32Array::from(Vec::<f32>::new()))
            } else {
                Arc::new(Float64Array::from(Vec::<f64>::new()))
            }
        };
        return Ok((0..c).map(empty).collect());
    }
    let base = t.data_ptr() as *mut u8;
    let owner = Arc::new(TensorOwner(Mutex::new(t)));
    let mut out: Vec<ArrayRef> = Vec::with_capacity(c);
    for j in 0..c {
        // SAFETY: row j of a c × n tensor whose rows are contiguous is n elements at
        // base + j·row_stride·elt, inside the storage `owner` keeps alive (and nothing writes
        // to it any more).
        let buffer = unsafe {
            let ptr = NonNull::new(base.add(j * row_stride * elt)).ok_or_else(|| bad("null data pointer".into()))?;
            Buffer::from_custom_allocation(ptr, n * elt, owner.clone())
        };
        if kind == Kind::Float {
            out.push(Arc::new(Float32Array::new(ScalarBuffer::new(buffer, 0, n), None)));
        } else {
            out.push(Arc::new(Float64Array::new(ScalarBuffer::new(buffer, 0, n), None)));
        }
    }
    Ok(out)
}
