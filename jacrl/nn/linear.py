"""Invertible affine layers A(x) = W x + b, in two parameterizations (docs/method.md §1).

* :class:`InverseLinear` is Yan's trick (seed eq. 12 and the paragraph after it): store and train
  V = W⁻¹, so the inverse pass x = V(y − b) is an ordinary matrix product and ∂(inverse pass)/∂V
  needs no derivative of a matrix inverse. W is only needed to act (forward), via a solve.
* :class:`LULinear` is Glow's W = P·L·(U + diag(sign·exp(s))) (Kingma & Dhariwal 2018): invertible
  by construction, log|det W| = Σ s in O(n), the inverse by two triangular solves.

Both work on row-vector batches ``(batch, n)`` and follow the nflows contract. Both start from a
random orthogonal matrix (condition number 1). Neither caches anything: the acting path takes W
once per weight generation (:meth:`jacrl.nn.InvertibleMLP.frozen_forward`, kept by
``InvertiblePolicy``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from jacrl.nn.accuracy import gamma


def random_orthogonal(n: int, dtype: torch.dtype) -> Tensor:
    """A Haar-random n×n orthogonal matrix (QR of a Gaussian, signs fixed by diag R)."""
    q, r = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).to(dtype).contiguous()


def _cond(matrix: Tensor) -> Tensor:
    if not bool(torch.isfinite(matrix).all()):
        return matrix.new_tensor(float("nan"))
    return torch.linalg.cond(matrix)


def _residual_bound(
    output: Tensor, inverse_map: Tensor, inputs: Tensor, error: Tensor, coarse: bool = False
) -> Tensor:
    """|r| + its rounding + ``error`` for r = output · inverse_mapᵀ − inputs, in float64: the
    computed ``output`` of a map M is M (inputs + r) exactly, so its error is |M| times this."""
    output, inputs = output.detach().double(), inputs.detach().double()
    residual = output @ inverse_map.mT - inputs
    rounding = gamma(inverse_map.shape[-1] + 1, torch.float64) * (
        _through(inverse_map, output.abs(), coarse) + inputs.abs()
    )
    return error.double() + residual.abs() + rounding


def _through(matrix: Tensor, spread: Tensor, coarse: bool = False) -> Tensor:
    """|matrix| applied to rows of an elementwise error ``spread`` (float64); ``coarse``: each
    row's largest entry times |matrix|'s row sums, elementwise at least the product
    (Σ_j |M_ij| s_j <= max_j s_j · Σ_j |M_ij|) at O(n²) instead of O(batch·n²)."""
    if coarse:
        return spread.amax(-1, keepdim=True) * matrix.abs().sum(-1)
    return spread @ matrix.abs().mT


class InvertibleLinear(nn.Module):
    """Base class: y = x Wᵀ + b with W = V⁻¹ square and invertible.

    Subclasses define how W, V and log|det V| come from their parameters.
    """

    bias: nn.Parameter | None

    def __init__(self, n: int, bias: bool, dtype: torch.dtype) -> None:
        super().__init__()
        self.n = n
        self.bias = nn.Parameter(torch.zeros(n, dtype=dtype)) if bias else None

    def extra_repr(self) -> str:
        return f"n={self.n}, bias={self.bias is not None}"

    # What a parameterization provides ------------------------------------------------------
    def weight(self) -> Tensor:
        """W, the forward matrix (differentiable)."""
        raise NotImplementedError

    def inverse_weight(self) -> Tensor:
        """V = W⁻¹, the matrix of the inverse pass (differentiable)."""
        raise NotImplementedError

    def log_abs_det_inverse(self) -> Tensor:
        """log|det V| as a 0-d tensor (differentiable, gradient V⁻ᵀ)."""
        raise NotImplementedError

    def apply_inverse_weight(self, z: Tensor) -> Tensor:
        """Rows of ``z`` times Vᵀ, i.e. V z_b for each sample (differentiable)."""
        raise NotImplementedError

    def apply_weight(self, x: Tensor) -> Tensor:
        """Rows of ``x`` times Wᵀ (differentiable); subclasses may avoid forming W."""
        return x @ self.weight().mT

    # Error bounds (docs/method.md §6; used by jacrl.nn.accuracy.ErrorBound, which calls them
    # without autograd) -------------------------------------------------------------------------
    # They are computed in float64 (a float32 layer's bounds would round as much as its pass);
    # the rounding they bound is that of the layer's own dtype.
    def rounding_gamma(self) -> float:
        """γ_n of the layer's dtype: the relative error bound of one of its length-n products."""
        # the first registered parameter, without building the parameters() generator (this is
        # called on every checked pass)
        dtype = next(p.dtype for p in self._parameters.values() if p is not None)
        return gamma(self.n, dtype)

    def inverse_error(
        self, z: Tensor, output: Tensor, error: Tensor, coarse: bool = False
    ) -> Tensor:
        """Bound on the error of ``output = apply_inverse_weight(z)``, elementwise, for ``z``
        known to within ``error``: the input error carried through V, plus this product's own
        rounding (Higham's componentwise bounds for a product and a triangular solve).

        :param coarse: a bound that may be looser but is cheaper, where the layer has one
            (:class:`~jacrl.nn.accuracy.ErrorBound` tries it first); else the same bound.
        """
        raise NotImplementedError

    def forward_error(
        self, x: Tensor, output: Tensor, error: Tensor, coarse: bool = False
    ) -> Tensor:
        """As :meth:`inverse_error`, for ``output = apply_weight(x)``."""
        raise NotImplementedError

    def affine(self, x: Tensor) -> Tensor:
        """W x + b for each row of ``x``, without the log-det (a caller that sums the layers'
        log-dets in one batched call, :class:`~jacrl.nn.InvertibleMLP`'s forward pass)."""
        y = self.apply_weight(x)
        return y if self.bias is None else y + self.bias

    # The nflows contract -------------------------------------------------------------------
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(W x + b, log|det W|) for each row of ``x``."""
        return self.affine(x), (-self.log_abs_det_inverse()).expand(x.shape[:-1])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """(V (y − b), log|det V|) for each row of ``y``: one layer of seed eq. 4."""
        if self.bias is not None:
            y = y - self.bias
        return self.apply_inverse_weight(y), self.log_abs_det_inverse().expand(y.shape[:-1])

    @torch.no_grad()
    def condition_number(self) -> Tensor:
        """2-norm condition number of V (equal to that of W), by SVD; inf when singular, NaN
        when the weights are not finite."""
        return _cond(self.inverse_weight())

    def trained_matrix(self) -> Tensor:
        """The matrix this parameterization trains (V for ``inverse``, W for ``lu``)."""
        raise NotImplementedError

    def set_trained_matrix(self, matrix: Tensor) -> None:
        """Overwrite the parameters (in place, so optimizers keep them) to represent ``matrix``."""
        raise NotImplementedError

    @torch.no_grad()
    def recondition(self, max_cond: float, target_cond: float) -> bool:
        """If cond exceeds ``max_cond``, raise the trained matrix's small singular values to
        s_max / ``target_cond``, keeping its singular vectors and largest singular value; return
        whether anything changed (one SVD either way).

        A projected-gradient step onto {cond ≤ target_cond}: the directions the layer had almost
        collapsed are reopened, the rest of the map is left as it was. Non-finite weights cannot
        be repaired and are left for :meth:`InvertibleMLP.check_conditioning` to report.
        """
        matrix = self.trained_matrix()
        if not bool(torch.isfinite(matrix).all()):
            return False
        u, s, vh = torch.linalg.svd(matrix)
        if bool(s[0] <= max_cond * s[-1]):
            return False
        self.set_trained_matrix((u * s.clamp_min(s[0] / target_cond)) @ vh)
        return True


class InverseLinear(InvertibleLinear):
    """Yan's parameterization: the trained parameter is ``V`` = W⁻¹ (seed eqs. 4, 12–16).

    Inverse pass: one matrix product, O(n²) per sample. log|det V|: one LU, O(n³) per call,
    shared by the whole batch, and its gradient V⁻ᵀ from the same LU. Forward: a solve,
    O(n³ + n² batch); the acting path multiplies by W = V⁻¹ computed once per weight generation.
    """

    def __init__(self, n: int, bias: bool = True, dtype: torch.dtype = torch.float32) -> None:
        super().__init__(n, bias, dtype)
        self.V = nn.Parameter(random_orthogonal(n, dtype))

    def weight(self) -> Tensor:
        return torch.linalg.inv(self.V)

    def inverse_weight(self) -> Tensor:
        return self.V

    def log_abs_det_inverse(self) -> Tensor:
        # slogdet keeps its LU factors for backward, so the gradient V⁻ᵀ costs one more O(n³)
        # solve per layer and batch (the scalar is broadcast to the batch, so autograd sums the
        # sample weights first), and a singular V gives -inf rather than an exception.
        return torch.linalg.slogdet(self.V).logabsdet

    def apply_inverse_weight(self, z: Tensor) -> Tensor:
        return z @ self.V.mT

    def trained_matrix(self) -> Tensor:
        return self.V.detach()

    @torch.no_grad()
    def set_trained_matrix(self, matrix: Tensor) -> None:
        self.V.copy_(matrix)

    def apply_weight(self, x: Tensor) -> Tensor:
        # x Wᵀ = x (Vᵀ)⁻¹: one LU of V and two triangular solves, no explicit inverse.
        return torch.linalg.solve(self.V.mT, x, left=False)

    def inverse_error(
        self, z: Tensor, output: Tensor, error: Tensor, coarse: bool = False
    ) -> Tensor:
        # |V ẑ computed − V z| <= |V| e + γ_n |V| |ẑ|
        spread = error + self.rounding_gamma() * z.double().abs()
        return _through(self.V.detach().double(), spread, coarse)

    def forward_error(
        self, x: Tensor, output: Tensor, error: Tensor, coarse: bool = False
    ) -> Tensor:
        # A posteriori: the residual r = ŷ Vᵀ − x of the solve, taken in float64 from the exact
        # V, gives ŷ − y = r Wᵀ (a priori bounds for the solve grow like n² u and refuse healthy
        # float32 passes of width 16 and more).
        v = self.V.detach().double()
        return _through(torch.linalg.inv(v), _residual_bound(output, v, x, error, coarse), coarse)


class LULinear(InvertibleLinear):
    """Glow's parameterization W = P·L·(U + diag(sign·exp(s))).

    ``lower`` (strictly lower part used, unit diagonal implied), ``upper`` (strictly upper part
    used), ``log_diag`` = s are trained; the permutation P and the signs are fixed buffers taken
    from the LU factorization of a random orthogonal matrix. log|det W| = Σ s, O(n). Inverse pass:
    Pᵀ then two triangular solves, O(n²) per sample, no O(n³) work at all.
    """

    perm: Tensor
    inverse_perm: Tensor
    sign: Tensor

    def __init__(self, n: int, bias: bool = True, dtype: torch.dtype = torch.float32) -> None:
        super().__init__(n, bias, dtype)
        p, lower, upper = torch.linalg.lu(random_orthogonal(n, torch.float64))
        diagonal = torch.diagonal(upper)
        # P @ M == M[perm]; Pᵀ @ M == M[inverse_perm].
        perm = p.argmax(dim=1)
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))
        self.register_buffer("sign", torch.sign(diagonal).to(dtype))
        self.lower = nn.Parameter(torch.tril(lower, -1).to(dtype).contiguous())
        self.upper = nn.Parameter(torch.triu(upper, 1).to(dtype).contiguous())
        self.log_diag = nn.Parameter(diagonal.abs().log().to(dtype))

    def unit_lower(self) -> Tensor:
        """L: the strictly lower part of ``lower`` plus the identity."""
        eye = torch.eye(self.n, dtype=self.lower.dtype, device=self.lower.device)
        return torch.tril(self.lower, -1) + eye

    def upper_with_diagonal(self) -> Tensor:
        """U′ = U + diag(sign·exp(s))."""
        return torch.triu(self.upper, 1) + torch.diag(self.sign * self.log_diag.exp())

    def weight(self) -> Tensor:
        return (self.unit_lower() @ self.upper_with_diagonal())[self.perm]

    def trained_matrix(self) -> Tensor:
        return self.weight().detach()

    @torch.no_grad()
    def set_trained_matrix(self, matrix: Tensor) -> None:
        # a fresh pivoted LU: the permutation and signs are buffers, so they may change too
        p, lower, upper = torch.linalg.lu(matrix)
        diagonal = torch.diagonal(upper)
        self.perm.copy_(p.argmax(dim=1))
        self.inverse_perm.copy_(torch.argsort(self.perm))
        self.sign.copy_(torch.sign(diagonal))
        self.lower.copy_(torch.tril(lower, -1))
        self.upper.copy_(torch.triu(upper, 1))
        self.log_diag.copy_(diagonal.abs().log())

    def inverse_weight(self) -> Tensor:
        eye = torch.eye(self.n, dtype=self.lower.dtype, device=self.lower.device)
        return self.apply_inverse_weight(eye).mT

    def log_abs_det_inverse(self) -> Tensor:
        return -self.log_diag.sum()

    @torch.no_grad()
    def condition_number(self) -> Tensor:
        # cond(W) = cond(V); W is a product of the factors, V would need two triangular inverses.
        return _cond(self.weight())

    def apply_inverse_weight(self, z: Tensor) -> Tensor:
        # Rows x with x U′ᵀ Lᵀ = z Pᵀᵀ, i.e. V z = U′⁻¹ L⁻¹ Pᵀ z per sample.
        z = z[..., self.inverse_perm]
        z = torch.linalg.solve_triangular(
            self.unit_lower().mT, z, upper=True, left=False, unitriangular=True
        )
        return torch.linalg.solve_triangular(
            self.upper_with_diagonal().mT, z, upper=False, left=False
        )

    def inverse_error(
        self, z: Tensor, output: Tensor, error: Tensor, coarse: bool = False
    ) -> Tensor:
        # A posteriori, as InverseLinear.forward_error: the residual r = x̂ Wᵀ − z of the two
        # triangular solves in float64, with W formed there from the factors (its own rounding
        # γ_n |L||U′| counted), gives x̂ − x = r Vᵀ (the solves' a priori bound |T⁻¹||T||x̂| runs
        # 10³–10⁵ times the actual error).
        # No coarse variant: at large widths this bound sits within a few times the float64
        # tolerance (n = 256: about half of it), where a coarse one would fail and cost both.
        lower, upper = self.unit_lower().double(), self.upper_with_diagonal().double()
        weight = (lower @ upper)[self.perm]
        spread = _residual_bound(output, weight, z, error)
        spread = spread + gamma(self.n, torch.float64) * (
            output.double().abs() @ (lower.abs() @ upper.abs())[self.perm].mT
        )
        return _through(torch.linalg.inv(weight), spread)

    def forward_error(
        self, x: Tensor, output: Tensor, error: Tensor, coarse: bool = False
    ) -> Tensor:
        # A posteriori too: the residual r = ŷ Ṽᵀ − x in float64, Ṽ = (W in float64)⁻¹, gives
        # ŷ = W̃ (x + r) with W̃ = Ṽ⁻¹; W̃ differs from the exact W = P L U′ by the float64
        # product's rounding and Ṽ's inversion error (Higham's |X̂A − I| <= γ_3n |X̂||L||U|).
        lower, upper = self.unit_lower().double(), self.upper_with_diagonal().double()
        weight = (lower @ upper)[self.perm]
        inverse = torch.linalg.inv(weight)
        x_size = x.detach().double().abs()
        factors = (lower.abs() @ upper.abs())[self.perm]
        drift = gamma(self.n, torch.float64) * (x_size @ factors.mT) + gamma(
            3 * self.n, torch.float64
        ) * (x_size @ (weight.abs() @ inverse.abs() @ weight.abs()).mT)
        return _through(weight, _residual_bound(output, inverse, x, error)) + drift
