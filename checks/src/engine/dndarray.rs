//! `dndarray/…`: `engine::DNDarray` against tch on the whole array: layout changes
//! (`dndarray/layouts`), reductions (`dndarray/reductions`), element-wise operations between
//! layouts (`dndarray/binary`), products with a replicated matrix (`dndarray/matmul`), factories
//! (`dndarray/factory`) and pieces that disagree between ranks (`dndarray/pieces`), on arrays with
//! fewer rows than ranks (3 rows on 4 ranks), empty arrays, integers with ties, booleans, f32 and
//! NaN.

use engine::DNDarray;
use engine::dndarray::{balanced_counts, offsets};
use tch::{Device, Kind, Tensor};

use super::{F32, F64, LAYOUTS, layout, pieces, reference};
use crate::checker::Checker;

/// The f64 arrays' shapes at P ranks: fewer rows than ranks (3 rows on 4 ranks), 3-d, an empty
/// array, and 2P + 1 rows.
fn shapes(p: i64) -> [Vec<i64>; 5] {
    [
        vec![3i64, 4],
        vec![17, 5],
        vec![4, 3, 5],
        vec![0, 3],
        vec![2 * p + 1, 2],
    ]
}

/// The f64 arrays: (name, array, index of the shape; its seed is 100 + index).
fn f64_arrays(p: usize) -> Vec<(String, Tensor, i64)> {
    shapes(p as i64)
        .iter()
        .enumerate()
        .map(|(i, shape)| {
            let x = reference(shape, 100 + i as i64, Kind::Double);
            (format!("f64{shape:?}"), x, i as i64)
        })
        .collect()
}

/// Integers with many ties (exact reductions, first-index argmin).
fn ints() -> Tensor {
    (reference(&[11, 4], 9, Kind::Double) * 1.5)
        .round()
        .to_kind(Kind::Int64)
}

/// f32.
fn f32_array() -> Tensor {
    reference(&[13, 6], 12, Kind::Float)
}

/// Collective. The `dndarray/layouts` subject: f64 arrays, integers, booleans and f32.
pub fn check_layouts(c: &mut Checker) {
    for (name, x, _) in f64_arrays(c.comm.size()) {
        layouts_of(c, &x, &format!("dndarray/layouts/{name}"));
    }
    layouts_of(c, &ints(), "dndarray/layouts/i64[11, 4]");
    let xb = reference(&[7, 3], 10, Kind::Double).gt(0.3);
    layouts_of(c, &xb, "dndarray/layouts/bool[7, 3]");
    layouts_of(c, &f32_array(), "dndarray/layouts/f32[13, 6]");
}

/// Collective. The `dndarray/reductions` subject: f64 arrays, integers, f32, and NaN handling
/// (NaN propagates through min/max; argmin finds the first NaN).
pub fn check_reductions(c: &mut Checker) {
    for (name, x, _) in f64_arrays(c.comm.size()) {
        reductions_of(c, &x, &format!("dndarray/reductions/{name}"), 1e-12);
    }
    reductions_of(c, &ints(), "dndarray/reductions/i64[11, 4]", 0.0);
    reductions_of(c, &f32_array(), "dndarray/reductions/f32[13, 6]", 1e-5);
    let xn = reference(&[9, 3], 14, Kind::Double);
    let _ = xn.get(6).get(1).fill_(f64::NAN);
    let _ = xn.get(2).get(1).fill_(f64::NAN);
    reductions_of(c, &xn, "dndarray/reductions/nan[9, 3]", 1e-12);
}

/// Collective. The `dndarray/binary` subject: the non-empty 2-d f64 arrays and f32.
pub fn check_binary(c: &mut Checker) {
    for (name, x, i) in f64_arrays(c.comm.size()) {
        if x.dim() == 2 && x.size()[0] > 0 {
            let y = reference(&x.size(), 200 + i, Kind::Double);
            binary_of(c, &x, &y, &format!("dndarray/binary/{name}"));
        }
    }
    let y = reference(&[13, 6], 13, Kind::Float);
    binary_of(c, &f32_array(), &y, "dndarray/binary/f32[13, 6]");
}

/// Collective. The `dndarray/matmul` subject: the non-empty 2-d f64 arrays and f32.
pub fn check_matmul(c: &mut Checker) {
    for (name, x, _) in f64_arrays(c.comm.size()) {
        if x.dim() == 2 && x.size()[0] > 0 {
            matmul_of(c, &x, &format!("dndarray/matmul/{name}"), 1e-12);
        }
    }
    matmul_of(c, &f32_array(), "dndarray/matmul/f32[13, 6]", 1e-5);
}

/// Layout operations on `x` (any dimensions) for every split axis and layout.
fn layouts_of(c: &mut Checker, x: &Tensor, name: &str) {
    let comm = c.comm;
    let (p, me) = (comm.size(), comm.rank());
    let nd = x.dim();
    for split in 0..nd {
        let n = x.size()[split];
        for lay in LAYOUTS {
            let counts = layout(lay, n, p);
            let tag = format!("{name}/split{split}/{lay}");
            let a = match pieces(comm, x, split, &counts) {
                Ok(a) => a,
                Err(e) => {
                    c.check(&format!("{tag}/from_pieces"), false, || e.to_string());
                    continue;
                }
            };
            let meta_ok =
                a.gshape() == x.size().as_slice() && a.counts() == counts.as_slice() && a.split() == Some(split);
            c.check(&format!("{tag}/from_pieces_meta"), meta_ok, || format!("{a:?}"));
            c.check(
                &format!("{tag}/is_balanced"),
                a.is_balanced() == (counts == balanced_counts(n, p)),
                || format!("{a:?}"),
            );
            c.close(&format!("{tag}/allgather"), a.allgather(), x, 0.0);
            let root = p / 2;
            match a.gather(root) {
                Ok(Some(g)) if me == root => c.close(&format!("{tag}/gather"), Ok::<_, String>(g), x, 0.0),
                Ok(None) if me != root => c.check(&format!("{tag}/gather"), true, String::new),
                other => c.check(&format!("{tag}/gather"), false, || format!("{other:?}")),
            }
            // balance and redistribute: exact local pieces.
            for (what, target) in [
                ("balance", balanced_counts(n, p)),
                ("to_last", layout("last", n, p)),
                ("to_ramp", layout("ramp", n, p)),
            ] {
                let b = if what == "balance" {
                    a.balance()
                } else {
                    a.redistribute(&target)
                };
                let want = x.narrow(split as i64, offsets(&target)[me], target[me]);
                let counts_ok = b.as_ref().is_ok_and(|b| b.counts() == target.as_slice());
                c.check(&format!("{tag}/{what}_counts"), counts_ok, || format!("{b:?}"));
                c.close(
                    &format!("{tag}/{what}"),
                    b.map(|b| b.local().shallow_clone()),
                    &want,
                    0.0,
                );
            }
            // resplit to every other axis and to none.
            for new in (0..nd).map(Some).chain([None]) {
                let r = a.resplit(new);
                let want = match new {
                    None => x.shallow_clone(),
                    // Resplitting to the current axis keeps the layout.
                    Some(b) if b == split => a.local().shallow_clone(),
                    Some(b) => {
                        let t = balanced_counts(x.size()[b], p);
                        x.narrow(b as i64, offsets(&t)[me], t[me])
                    }
                };
                let split_ok = r
                    .as_ref()
                    .is_ok_and(|r| r.split() == new && (new.is_none() || new == Some(split) || r.is_balanced()));
                c.check(&format!("{tag}/resplit_{new:?}_layout"), split_ok, || format!("{r:?}"));
                c.close(
                    &format!("{tag}/resplit_{new:?}"),
                    r.map(|r| r.local().shallow_clone()),
                    &want,
                    0.0,
                );
            }
            // transpose relabels the split axis.
            if nd >= 2 {
                let tr = a.transpose(0, nd - 1);
                let relabel = tr.as_ref().is_ok_and(|t| {
                    t.split()
                        == Some(if split == 0 {
                            nd - 1
                        } else if split == nd - 1 {
                            0
                        } else {
                            split
                        })
                });
                c.check(&format!("{tag}/transpose_split"), relabel, || format!("{tr:?}"));
                c.close(
                    &format!("{tag}/transpose"),
                    tr.and_then(|t| t.allgather()),
                    &x.transpose(0, nd as i64 - 1),
                    0.0,
                );
            }
        }
    }
}

/// Element-wise operations between arrays in different layouts.
fn binary_of(c: &mut Checker, x: &Tensor, y: &Tensor, name: &str) {
    let comm = c.comm;
    let p = comm.size();
    let nd = x.dim();
    let mut arrays: Vec<(String, DNDarray, DNDarray)> = Vec::new();
    for sa in (0..nd).map(Some).chain([None]) {
        for sb in (0..nd).map(Some).chain([None]) {
            let make = |t: &Tensor, s: Option<usize>, lay: &str| match s {
                None => DNDarray::from_replicated(t, None),
                Some(s) => pieces(comm, t, s, &layout(lay, t.size()[s], p)),
            };
            let (a, b) = (make(x, sa, "ramp"), make(y, sb, "balanced"));
            if let (Ok(a), Ok(b)) = (a, b) {
                arrays.push((format!("{sa:?}x{sb:?}"), a, b));
            } else {
                c.check(&format!("{name}/binary_setup_{sa:?}_{sb:?}"), false, || {
                    "construction failed".into()
                });
            }
        }
    }
    for (lab, a, b) in &arrays {
        for (op, want) in [
            ("add", x + y),
            ("sub", x - y),
            ("mul", x * y),
            ("div", x / y),
            ("maximum", x.maximum(y)),
        ] {
            let r = match op {
                "add" => a.add(b),
                "sub" => a.sub(b),
                "mul" => a.mul(b),
                "div" => a.div(b),
                _ => a.binary(b, engine::dndarray::BinaryOp::Maximum),
            };
            let layout_ok = r.as_ref().is_ok_and(|r| {
                let lead = if a.split().is_some() { a } else { b };
                r.split() == lead.split() && r.counts() == lead.counts()
            });
            c.check(&format!("{name}/{lab}/{op}_layout"), layout_ok, || format!("{r:?}"));
            c.close(
                &format!("{name}/{lab}/{op}"),
                r.and_then(|r| r.allgather()),
                &want,
                1e-12,
            );
        }
    }
    let other = DNDarray::zeros(&[1, 2], None, F64).expect("zeros");
    let e = arrays[0].1.add(&other);
    let ok = matches!(&e, Err(err) if err.to_string().contains("differ"));
    c.check(&format!("{name}/binary_shape_mismatch"), ok, || format!("{e:?}"));
}

/// Reductions over every axis and over all elements, for every split and layout.
fn reductions_of(c: &mut Checker, x: &Tensor, name: &str, tol: f64) {
    let comm = c.comm;
    let p = comm.size();
    let nd = x.dim();
    let float = matches!(x.kind(), Kind::Float | Kind::Double);
    for split in (0..nd).map(Some).chain([None]) {
        for lay in ["balanced", "ramp", "last"] {
            if split.is_none() && lay != "balanced" {
                continue;
            }
            let a = match split {
                None => DNDarray::from_replicated(x, None).expect("replicated"),
                Some(s) => pieces(comm, x, s, &layout(lay, x.size()[s], p)).expect("pieces"),
            };
            for axis in (0..nd).map(Some).chain([None]) {
                let tag = format!("{name}/split{split:?}/{lay}/axis{axis:?}");
                let dim = axis.map(|d| d as i64);
                let want_sum = match dim {
                    Some(d) => x.sum_dim_intlist(d, false, None::<Kind>),
                    None => x.sum(None::<Kind>),
                };
                c.close(
                    &format!("{tag}/sum"),
                    a.sum(axis).and_then(|r| r.allgather()),
                    &want_sum,
                    tol,
                );
                let empty = match dim {
                    Some(d) => x.size()[d as usize] == 0,
                    None => x.numel() == 0,
                };
                if empty {
                    let e = a.min(axis);
                    c.check(&format!("{tag}/min_empty_refused"), e.is_err(), || format!("{e:?}"));
                    continue;
                }
                let (wmin, wmax, wamin, wamax) = match dim {
                    Some(d) => (
                        x.amin(d, false),
                        x.amax(d, false),
                        x.argmin(d, false),
                        x.argmax(d, false),
                    ),
                    None => (x.min(), x.max(), x.argmin(None, false), x.argmax(None, false)),
                };
                c.close(
                    &format!("{tag}/min"),
                    a.min(axis).and_then(|r| r.allgather()),
                    &wmin,
                    0.0,
                );
                c.close(
                    &format!("{tag}/max"),
                    a.max(axis).and_then(|r| r.allgather()),
                    &wmax,
                    0.0,
                );
                c.close(
                    &format!("{tag}/argmin"),
                    a.argmin(axis).and_then(|r| r.allgather()),
                    &wamin,
                    0.0,
                );
                c.close(
                    &format!("{tag}/argmax"),
                    a.argmax(axis).and_then(|r| r.allgather()),
                    &wamax,
                    0.0,
                );
                if float {
                    let dims: Vec<i64> = match dim {
                        Some(d) => vec![d],
                        None => (0..nd as i64).collect(),
                    };
                    let wmean = x.mean_dim(dims.as_slice(), false, None::<Kind>);
                    c.close(
                        &format!("{tag}/mean"),
                        a.mean(axis).and_then(|r| r.allgather()),
                        &wmean,
                        tol,
                    );
                    for ddof in [0i64, 1] {
                        let wvar = x.var_correction(dims.as_slice(), ddof, false);
                        c.close(
                            &format!("{tag}/var_ddof{ddof}"),
                            a.var(axis, ddof).and_then(|r| r.allgather()),
                            &wvar,
                            tol,
                        );
                    }
                } else {
                    let e = a.mean(axis);
                    let ok = matches!(&e, Err(err) if err.to_string().contains("not floating point"));
                    c.check(&format!("{tag}/mean_int_refused"), ok, || format!("{e:?}"));
                }
            }
        }
    }
}

/// `matmul` and `left_matmul` of `x` in every split with a replicated matrix.
fn matmul_of(c: &mut Checker, x: &Tensor, name: &str, tol: f64) {
    let comm = c.comm;
    let p = comm.size();
    let (n, d) = (x.size()[0], x.size()[1]);
    let b = reference(&[d, 3], 5, x.kind());
    let a = reference(&[2, n], 6, x.kind());
    for split in [Some(0), Some(1), None] {
        for lay in ["balanced", "ramp"] {
            let arr = match split {
                None => DNDarray::from_replicated(x, None).expect("replicated"),
                Some(s) => pieces(comm, x, s, &layout(lay, x.size()[s], p)).expect("pieces"),
            };
            let tag = format!("{name}/split{split:?}/{lay}");
            let r = arr.matmul(&b);
            let want_split = if split == Some(0) { Some(0) } else { None };
            c.check(
                &format!("{tag}/matmul_split"),
                r.as_ref().is_ok_and(|r| r.split() == want_split),
                || format!("{r:?}"),
            );
            c.close(
                &format!("{tag}/matmul"),
                r.and_then(|r| r.allgather()),
                &x.matmul(&b),
                tol,
            );
            let r = arr.left_matmul(&a);
            let want_split = if split == Some(1) { Some(1) } else { None };
            c.check(
                &format!("{tag}/left_matmul_split"),
                r.as_ref().is_ok_and(|r| r.split() == want_split),
                || format!("{r:?}"),
            );
            c.close(
                &format!("{tag}/left_matmul"),
                r.and_then(|r| r.allgather()),
                &a.matmul(x),
                tol,
            );
        }
    }
    let arr = DNDarray::from_replicated(x, Some(0)).expect("split");
    let e = arr.matmul(&reference(&[d + 1, 2], 1, x.kind()));
    let ok = matches!(&e, Err(err) if err.to_string().contains("inner dimensions"));
    c.check(&format!("{name}/matmul_inner_mismatch"), ok, || format!("{e:?}"));
}

/// Collective. The `dndarray/factory` subject: seeded random arrays are the same in every
/// split and at every P; zeros, ones, arange; refused arguments.
pub fn check_factories(c: &mut Checker) {
    for shape in [vec![3i64, 4], vec![17, 5], vec![4, 3, 5], vec![0, 2]] {
        for split in (0..shape.len()).map(Some).chain([None]) {
            let tag = format!("dndarray/factory/{shape:?}/split{split:?}");
            for (kind, tol) in [(Kind::Double, 0.0), (Kind::Float, 0.0)] {
                let full = DNDarray::randn(&shape, None, 42, (kind, Device::Cpu)).map(|a| a.into_local());
                let dist = DNDarray::randn(&shape, split, 42, (kind, Device::Cpu));
                let bal = dist.as_ref().is_ok_and(|d| d.is_balanced() && d.split() == split);
                c.check(&format!("{tag}/randn_{kind:?}_balanced"), bal, || format!("{dist:?}"));
                match full {
                    Ok(full) => c.close(
                        &format!("{tag}/randn_{kind:?}"),
                        dist.and_then(|d| d.allgather()),
                        &full,
                        tol,
                    ),
                    Err(e) => c.check(&format!("{tag}/randn_{kind:?}"), false, || e.to_string()),
                }
                let full = DNDarray::rand(&shape, None, 7, (kind, Device::Cpu)).map(|a| a.into_local());
                let dist = DNDarray::rand(&shape, split, 7, (kind, Device::Cpu));
                if let Ok(full) = full {
                    let in_range = full.numel() == 0
                        || (full.min().double_value(&[]) >= 0.0 && full.max().double_value(&[]) < 1.0);
                    c.check(&format!("{tag}/rand_{kind:?}_range"), in_range, || {
                        "outside [0, 1)".into()
                    });
                    c.close(
                        &format!("{tag}/rand_{kind:?}"),
                        dist.and_then(|d| d.allgather()),
                        &full,
                        tol,
                    );
                }
            }
            let z = DNDarray::zeros(&shape, split, F32).and_then(|z| z.allgather());
            c.close(&format!("{tag}/zeros"), z, &Tensor::zeros(shape.as_slice(), F32), 0.0);
            let o = DNDarray::ones(&shape, split, F64).and_then(|o| o.allgather());
            c.close(&format!("{tag}/ones"), o, &Tensor::ones(shape.as_slice(), F64), 0.0);
        }
    }
    for n in [0i64, 3, 10] {
        for split in [Some(0), None] {
            let r = DNDarray::arange(n, split, (Kind::Int64, Device::Cpu)).and_then(|a| a.allgather());
            c.close(
                &format!("dndarray/factory/arange{n}/split{split:?}"),
                r,
                &Tensor::arange(n, (Kind::Int64, Device::Cpu)),
                0.0,
            );
        }
    }
    let e = DNDarray::rand(&[2, 2], Some(2), 1, F64);
    c.check(
        "dndarray/factory/bad_split_refused",
        matches!(&e, Err(err) if err.to_string().contains("out of range")),
        || format!("{e:?}"),
    );
    let e = DNDarray::rand(&[2, 2], None, 1, (Kind::Int64, Device::Cpu));
    c.check("dndarray/factory/int_rand_refused", e.is_err(), || format!("{e:?}"));
}

/// Collective. The `dndarray/pieces` subject (P > 1; nothing at P = 1): pieces whose shapes
/// differ between ranks, and redistribution targets that differ, refused on every rank.
pub fn check_pieces_errors(c: &mut Checker) {
    let comm = c.comm;
    let (p, me) = (comm.size(), comm.rank());
    if p < 2 {
        return;
    }
    // Rank 1 has a different number of columns.
    let t = Tensor::zeros([2, if me == 1 { 4 } else { 3 }], F64);
    let e = DNDarray::from_pieces(t, 0);
    let ok = matches!(&e, Err(err) if err.to_string().contains("rank 1 has shape [2, 4]"));
    c.check("dndarray/pieces/shape_mismatch", ok, || format!("{e:?}"));
    // Different targets on different ranks are refused everywhere.
    let a = DNDarray::zeros(&[p as i64 * 2, 2], Some(0), F64).expect("zeros");
    let mut target = balanced_counts(p as i64 * 2, p);
    if me == p - 1 {
        target = layout("first", p as i64 * 2, p);
    }
    let e = a.redistribute(&target);
    let ok = matches!(&e, Err(err) if err.to_string().contains(&format!("rank {} asked for target", p - 1)));
    c.check("dndarray/pieces/redistribute_targets_differ", ok, || format!("{e:?}"));
}
