//! The kernels' one view of a tensor's elements on the host: read in place with strides
//! ([`HostMatrix`]), written in place when contiguous ([`f64_mut`]), or copied when small
//! ([`f64_values`]). The only conversions of libtorch data pointers to slices in the kernels
//! are here, each after checking the device, the dtype and the layout.

use tch::{Device, Kind, TchError, Tensor};

/// A host tensor's elements in place, by dtype.
#[derive(Clone, Copy)]
pub(crate) enum Elements<'a> {
    /// f64 elements.
    F64(&'a [f64]),
    /// f32 elements (the kernels read them as f64).
    F32(&'a [f32]),
}

/// A read-only view of a 2-D f64 or f32 CPU tensor (rows × cols, any non-negative strides):
/// element (i, j) is `el[i·row_stride + j·col_stride]`. The slice runs from element (0, 0) to
/// element (rows − 1, cols − 1) (empty when the tensor has no elements).
#[derive(Clone, Copy)]
pub(crate) struct HostMatrix<'a> {
    /// The elements.
    pub el: Elements<'a>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Elements from one row to the next.
    pub row_stride: usize,
    /// Elements from one column to the next.
    pub col_stride: usize,
}

impl<'a> HostMatrix<'a> {
    /// Views `t` without copying; `None` unless it is a 2-D tensor on the CPU with f64 or f32
    /// elements and non-negative strides. The view borrows `t`: the storage stays alive and
    /// libtorch does not free or move it meanwhile.
    pub fn of(t: &'a Tensor) -> Option<Self> {
        let el = match t.kind() {
            Kind::Double => Elements::F64(elements(t)?),
            Kind::Float => Elements::F32(elements(t)?),
            _ => return None,
        };
        let (size, stride) = (t.size(), t.stride());
        Some(HostMatrix {
            el,
            rows: size[0] as usize,
            cols: size[1] as usize,
            row_stride: stride[0] as usize,
            col_stride: stride[1] as usize,
        })
    }

    /// (row stride, column stride).
    pub fn strides(&self) -> (usize, usize) {
        (self.row_stride, self.col_stride)
    }
}

/// An element type a [`HostMatrix`] holds, with its libtorch dtype.
trait HostElement: Copy {
    const KIND: Kind;
}
impl HostElement for f64 {
    const KIND: Kind = Kind::Double;
}
impl HostElement for f32 {
    const KIND: Kind = Kind::Float;
}

/// The elements of the 2-D CPU tensor `t` of dtype `T` from element (0, 0) to element
/// (rows − 1, cols − 1), in place; `None` when `t` is not such a tensor or has a negative
/// stride.
fn elements<T: HostElement>(t: &Tensor) -> Option<&[T]> {
    if t.device() != Device::Cpu || t.kind() != T::KIND || t.dim() != 2 {
        return None;
    }
    let (size, stride) = (t.size(), t.stride());
    if size.iter().chain(&stride).any(|v| *v < 0) {
        return None;
    }
    if size.contains(&0) {
        // An empty tensor's data pointer may be null, which no slice may hold.
        return Some(&[]);
    }
    let extent = (size[0] as usize - 1) * stride[0] as usize + (size[1] as usize - 1) * stride[1] as usize + 1;
    // SAFETY: `t` is a CPU tensor of `T`'s dtype with non-negative strides (checked above), and
    // `extent` is one past the farthest element it addresses, (rows − 1, cols − 1): libtorch's
    // storage holds at least that many elements of `T` from the data pointer (storage offset
    // included) on, aligned for `T`. The slice borrows `t`, which keeps the storage alive; it
    // is only read, and the kernels write through no other handle meanwhile.
    Some(unsafe { std::slice::from_raw_parts(t.data_ptr() as *const T, extent) })
}

/// A writable view of all elements of `t`, row-major; `None` unless `t` is a contiguous f64
/// CPU tensor. The exclusive borrow keeps this handle from reading or writing them meanwhile;
/// the caller must not use other handles to the same storage (shallow clones, views) while
/// the slice lives either: Rust cannot see those (libtorch handles alias freely).
pub(crate) fn f64_mut(t: &mut Tensor) -> Option<&mut [f64]> {
    if t.device() != Device::Cpu || t.kind() != Kind::Double || !t.is_contiguous() {
        return None;
    }
    let n = t.numel();
    if n == 0 {
        return Some(&mut []);
    }
    // SAFETY: `t` is a contiguous CPU f64 tensor (checked above): its `n` elements lie one
    // after the other from its data pointer, aligned for f64. The slice borrows `t` mutably,
    // so no other use of this handle overlaps it; other handles to the storage are the
    // caller's to leave alone (documented above; the kernels pass tensors they or their
    // callers allocated for the output).
    Some(unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f64, n) })
}

/// The values of a tensor of any float dtype, layout and device, copied into a row-major f64
/// vector on the host: the small operands the kernels take as slices (R, W, means, scales).
pub(crate) fn f64_values(t: &Tensor) -> Result<Vec<f64>, TchError> {
    Vec::<f64>::try_from(
        t.f_to_device(Device::Cpu)?
            .f_to_kind(Kind::Double)?
            .f_contiguous()?
            .f_reshape([-1])?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_f64_and_f32_with_strides() {
        let x = Tensor::arange(12, (Kind::Double, Device::Cpu)).reshape([3, 4]);
        let m = HostMatrix::of(&x).expect("f64");
        assert_eq!((m.rows, m.cols, m.strides()), (3, 4, (4, 1)));
        let Elements::F64(v) = m.el else { panic!("f64") };
        assert_eq!(v.len(), 12);
        // A transposed column window: strides (1, 4), storage offset 1.
        let t = x.narrow(1, 1, 2).tr();
        let m = HostMatrix::of(&t).expect("strided");
        assert_eq!((m.rows, m.cols, m.strides()), (2, 3, (1, 4)));
        let Elements::F64(v) = m.el else { panic!("f64") };
        // Element (i, j) of the view is x[j, 1 + i].
        assert_eq!(v[m.row_stride + 2 * m.col_stride], 10.0);
        assert_eq!(v.len(), 10);
        let f = x.to_kind(Kind::Float);
        assert!(matches!(HostMatrix::of(&f).map(|m| m.el), Some(Elements::F32(v)) if v.len() == 12));
        let empty = Tensor::zeros([0, 5], (Kind::Double, Device::Cpu));
        assert!(matches!(HostMatrix::of(&empty).map(|m| m.el), Some(Elements::F64(v)) if v.is_empty()));
    }

    #[test]
    fn refuses_what_the_kernels_cannot_read() {
        // Wrong dtype or number of dimensions.
        let i = Tensor::zeros([4, 2], (Kind::Int64, Device::Cpu));
        assert!(HostMatrix::of(&i).is_none());
        let h = Tensor::zeros([4, 2], (Kind::Half, Device::Cpu));
        assert!(HostMatrix::of(&h).is_none());
        let v = Tensor::zeros([4], (Kind::Double, Device::Cpu));
        assert!(HostMatrix::of(&v).is_none());
        // Writing needs a contiguous f64 tensor.
        let mut x = Tensor::zeros([4, 3], (Kind::Double, Device::Cpu));
        assert_eq!(f64_mut(&mut x).map(|s| s.len()), Some(12));
        let mut t = x.tr();
        assert!(f64_mut(&mut t).is_none());
        let mut narrow = x.narrow(1, 0, 2);
        assert!(f64_mut(&mut narrow).is_none());
        let mut f = Tensor::zeros([4, 3], (Kind::Float, Device::Cpu));
        assert!(f64_mut(&mut f).is_none());
        let mut e = Tensor::zeros([0, 3], (Kind::Double, Device::Cpu));
        assert_eq!(f64_mut(&mut e).map(|s| s.len()), Some(0));
        // A CUDA tensor, where this machine has a GPU.
        if tch::Cuda::is_available() {
            let mut g = Tensor::zeros([4, 3], (Kind::Double, Device::Cuda(0)));
            assert!(HostMatrix::of(&g).is_none());
            assert!(f64_mut(&mut g).is_none());
        }
    }

    #[test]
    fn writes_land_in_the_tensor() {
        let mut x = Tensor::zeros([2, 3], (Kind::Double, Device::Cpu));
        f64_mut(&mut x).expect("contiguous")[4] = 7.0;
        assert_eq!(x.double_value(&[1, 1]), 7.0);
        let w = Tensor::arange(6, (Kind::Float, Device::Cpu)).reshape([2, 3]).tr();
        assert_eq!(f64_values(&w).expect("values"), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }
}
