//! Conversions between [`ndarray`] arrays and the engine's types (feature `ndarray`).
//!
//! For hosts that hold their query embeddings in `ndarray` arrays:
//!
//! - a 2-D `f32` array in standard (row-major, contiguous) layout becomes a [`FeatureBatch`]
//!   without a copy: `FeatureBatch::try_from(view)` (a view, for example of a row range) or
//!   `FeatureBatch::try_from(&array)`. Any other layout (column-major, a column slice, a
//!   reversed or stepped view) is an [`Error::Shape`] that says so, rather than a silent copy:
//!   make it standard with `array.as_standard_layout()` first;
//! - a 1-D `f32` array of any layout becomes a [`QueryFeatures`] (which owns and L2-normalises
//!   its copy, as [`QueryFeatures::new`] does): `QueryFeatures::try_from(&row)`;
//! - [`Estimates`] give their `rows × models` quality and cost matrices as [`ArrayView2`]s
//!   borrowing the estimates ([`Estimates::quality_view`], [`Estimates::cost_view`]), or as owned
//!   [`Array2`]s without a copy ([`Estimates::into_arrays`]).
//!
//! # Example
//!
//! ```
//! use ndarray::{s, Array2};
//! use pointsman::data::Split;
//! use pointsman::routers::baseline::{Baseline, BaselineRouter};
//! use pointsman::{FeatureBatch, ModelCard, ModelPool, Objective, Router};
//!
//! fn main() -> pointsman::Result<()> {
//!     let pool = ModelPool::new(vec![ModelCard::new("a", 0.1, 0.1), ModelCard::new("b", 1.0, 1.0)])?;
//!     let train = Split::from_arrays(pool, vec![1.0, 0.0, 0.0, 1.0], 2, vec![0.2, 0.9, 0.4, 0.7], vec![1e-5, 1e-4, 1e-5, 1e-4])?;
//!     let router = BaselineRouter::fit(Baseline::BestSingle, &train)?;
//!
//!     let queries = Array2::from_shape_vec((3, 2), vec![1.0_f32, 0.0, 0.6, 0.8, 0.0, 1.0]).unwrap();
//!     let batch = FeatureBatch::try_from(queries.slice(s![1.., ..]))?; // rows 1 and 2, no copy
//!     assert_eq!(router.route_batch(&batch, &Objective::new(0.0))?, [1, 1]);
//!     let estimates = router.estimate_batch(&batch)?;
//!     assert_eq!(estimates.quality_view()?.shape(), [2, 2]);
//!     Ok(())
//! }
//! ```

use ndarray::{Array2, ArrayBase, ArrayView2, Data, Ix1, Ix2};

use crate::error::{Error, Result};
use crate::features::{FeatureBatch, QueryFeatures};
use crate::router::Estimates;

/// The row-major data of a 2-D array, or why there is none.
fn standard_rows<'a>(data: Option<&'a [f32]>, shape: &[usize]) -> Result<&'a [f32]> {
    data.ok_or_else(|| {
        Error::Shape(format!(
            "a {} x {} array not in standard (row-major, contiguous) layout: a batch is borrowed \
             without a copy, so make it standard first (`.as_standard_layout()`)",
            shape[0], shape[1]
        ))
    })
}

/// Borrows a view's rows as a batch, without a copy.
///
/// # Errors
///
/// [`Error::Shape`] when the view is not in standard layout; the errors of
/// [`FeatureBatch::new`].
impl<'a> TryFrom<ArrayView2<'a, f32>> for FeatureBatch<'a> {
    type Error = Error;

    fn try_from(view: ArrayView2<'a, f32>) -> Result<Self> {
        let data = standard_rows(view.to_slice(), view.shape())?;
        FeatureBatch::new(data, view.ncols())
    }
}

/// Borrows an array's rows as a batch, without a copy.
///
/// # Errors
///
/// As for a view.
impl<'a, S: Data<Elem = f32>> TryFrom<&'a ArrayBase<S, Ix2>> for FeatureBatch<'a> {
    type Error = Error;

    fn try_from(array: &'a ArrayBase<S, Ix2>) -> Result<Self> {
        let data = standard_rows(array.as_slice(), array.shape())?;
        FeatureBatch::new(data, array.ncols())
    }
}

/// One query's embedding from a 1-D array of any layout (copied and L2-normalised).
///
/// # Errors
///
/// As [`QueryFeatures::new`].
impl<S: Data<Elem = f32>> TryFrom<&ArrayBase<S, Ix1>> for QueryFeatures {
    type Error = Error;

    fn try_from(array: &ArrayBase<S, Ix1>) -> Result<Self> {
        QueryFeatures::new(array.iter().copied().collect())
    }
}

impl Estimates {
    fn matrix_view<'a>(&self, what: &str, values: &'a [f64]) -> Result<ArrayView2<'a, f64>> {
        ArrayView2::from_shape((self.rows(), self.models()), values).map_err(|_| {
            Error::Shape(format!(
                "estimates of {} rows x {} models hold {} {what} values",
                self.rows(),
                self.models(),
                values.len()
            ))
        })
    }

    /// The expected quality, a `rows × models` view of [`Estimates::quality`] (no copy).
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when `quality` no longer holds `rows × models` values.
    pub fn quality_view(&self) -> Result<ArrayView2<'_, f64>> {
        self.matrix_view("quality", &self.quality)
    }

    /// The expected cost in USD, a `rows × models` view of [`Estimates::cost`] (no copy).
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when `cost` no longer holds `rows × models` values.
    pub fn cost_view(&self) -> Result<ArrayView2<'_, f64>> {
        self.matrix_view("cost", &self.cost)
    }

    /// The expected quality and cost as owned `rows × models` arrays, taking the estimates'
    /// vectors without a copy.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when `quality` or `cost` no longer holds `rows × models` values.
    pub fn into_arrays(self) -> Result<(Array2<f64>, Array2<f64>)> {
        self.quality_view()?;
        self.cost_view()?;
        let shape = (self.rows(), self.models());
        let owned = |v: Vec<f64>| Array2::from_shape_vec(shape, v).expect("shape checked above");
        Ok((owned(self.quality), owned(self.cost)))
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{s, Array1, Array2, ShapeBuilder};

    use super::*;
    use crate::{ErrorKind, Objective, Router};

    fn router() -> crate::routers::baseline::BaselineRouter {
        use crate::data::Split;
        use crate::routers::baseline::{Baseline, BaselineRouter};
        use crate::{ModelCard, ModelPool};
        let pool = ModelPool::new(vec![
            ModelCard::new("a", 0.1, 0.1),
            ModelCard::new("b", 1.0, 1.0),
            ModelCard::new("c", 2.0, 2.0),
        ])
        .unwrap();
        let train = Split::from_arrays(
            pool,
            vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            3,
            vec![0.2, 0.9, 0.5, 0.4, 0.7, 0.6],
            vec![1e-5, 1e-4, 2e-4, 1e-5, 1e-4, 2e-4],
        )
        .unwrap();
        BaselineRouter::fit(Baseline::Zero, &train).unwrap()
    }

    fn queries() -> Array2<f32> {
        Array2::from_shape_fn((5, 3), |(r, c)| (r * 3 + c) as f32 + 1.0)
    }

    #[test]
    fn standard_arrays_and_row_ranges_are_borrowed() {
        let a = queries();
        let batch = FeatureBatch::try_from(&a).unwrap();
        assert_eq!((batch.rows(), batch.dim()), (5, 3));
        assert_eq!(batch.data().as_ptr(), a.as_ptr());
        let rows = FeatureBatch::try_from(a.slice(s![2..4, ..])).unwrap();
        assert_eq!(rows.rows(), 2);
        assert_eq!(rows.data().as_ptr(), a.row(2).as_ptr());
        assert_eq!(rows.data(), &a.as_slice().unwrap()[6..12]);
        // The same decisions as the batch from the same floats.
        let r = router();
        let objective = Objective::new(1000.0);
        let plain = FeatureBatch::new(a.as_slice().unwrap(), 3).unwrap();
        assert_eq!(
            r.route_batch(&batch, &objective).unwrap(),
            r.route_batch(&plain, &objective).unwrap()
        );
    }

    #[test]
    fn other_layouts_are_a_shape_error() {
        let a = queries();
        let fortran = Array2::from_shape_vec((5, 3).f(), a.iter().copied().collect()).unwrap();
        let column_slice = a.slice(s![.., ..2]);
        let reversed = a.slice(s![..;-1, ..]);
        for e in [
            FeatureBatch::try_from(&fortran).unwrap_err(),
            FeatureBatch::try_from(a.t()).unwrap_err(),
            FeatureBatch::try_from(column_slice).unwrap_err(),
            FeatureBatch::try_from(reversed).unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::Shape);
            assert!(e.to_string().contains("not in standard"), "{e}");
        }
        // ...and fine once made standard.
        let standard = fortran.as_standard_layout();
        assert_eq!(FeatureBatch::try_from(&standard).unwrap().rows(), 5);
    }

    #[test]
    fn query_features_from_any_1d_layout() {
        let a = queries();
        let column = a.column(1); // stride 3
        let q = QueryFeatures::try_from(&column).unwrap();
        let expected = QueryFeatures::new(vec![2.0, 5.0, 8.0, 11.0, 14.0]).unwrap();
        assert_eq!(q.embedding(), expected.embedding());
        let owned = Array1::from(vec![3.0_f32, 4.0]);
        assert_eq!(
            QueryFeatures::try_from(&owned).unwrap().embedding(),
            [0.6, 0.8]
        );
        let zeros = Array1::<f32>::zeros(3);
        assert_eq!(
            QueryFeatures::try_from(&zeros).unwrap_err().kind(),
            ErrorKind::InvalidFeatures
        );
    }

    #[test]
    fn estimates_as_arrays() {
        let a = queries();
        let est = router()
            .estimate_batch(&FeatureBatch::try_from(&a).unwrap())
            .unwrap();
        let q = est.quality_view().unwrap();
        let c = est.cost_view().unwrap();
        assert_eq!(
            (q.shape(), c.shape()),
            ([5, 3].as_slice(), [5, 3].as_slice())
        );
        assert_eq!(q.as_ptr(), est.quality.as_ptr());
        for r in 0..5 {
            assert_eq!(q.row(r).as_slice().unwrap(), est.quality_row(r));
            assert_eq!(c.row(r).as_slice().unwrap(), est.cost_row(r));
        }
        let (quality_ptr, expected) = (est.quality.as_ptr(), est.clone());
        let (q, c) = est.into_arrays().unwrap();
        assert_eq!(q.as_ptr(), quality_ptr);
        assert_eq!(q, expected.quality_view().unwrap());
        assert_eq!(c, expected.cost_view().unwrap());

        let mut broken = expected;
        broken.cost.pop();
        let e = broken.cost_view().unwrap_err();
        assert_eq!(
            e.to_string(),
            "shape mismatch: estimates of 5 rows x 3 models hold 14 cost values"
        );
        assert!(broken.quality_view().is_ok());
        assert_eq!(broken.into_arrays().unwrap_err().kind(), ErrorKind::Shape);
    }
}
