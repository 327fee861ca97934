"""Is one gradient-descent step (seed 002, eq. 20) stable, and if not, why?

The step is stable to first order when every eigenvalue 1 − αλ of Df = I − α∇²L lies in the
unit circle, i.e. every Hessian eigenvalue λ lies in (0, 2/α). ρ(Df) > 1 happens in two ways
that mean opposite things:

* **curvature** — λ_max > 2/α, so Df has an eigenvalue below −1: the iterate overshoots and
  oscillates with growing amplitude along the top eigenvector. Full-batch GD drives λ_max up to
  2/α and hovers there: the "edge of stability" (Cohen et al., ICLR 2021).
* **saddle** — λ_min < 0, so Df has an eigenvalue above +1: GD moves monotonically away from a
  saddle along a negative-curvature direction, as it should (e.g. at a default initialisation).

The softmax output makes one case of ρ(Df) = 1 unavoidable: logits shifted by a constant per
example, (W2 + u1ᵀ, b2 + c1), give the same loss, so ∇²L has at least h + 1 exact zero
eigenvalues at every θ and Df the eigenvalue 1 on them. The gradient is orthogonal to those
directions, so GD never moves along them: they are neutral, and the verdict ignores eigenvalues
within ``tol`` of 0.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StabilityVerdict:
    """The stability of θ ↦ θ − α∇L(θ) from the two ends of the Hessian spectrum.

    :param lr: the step size α.
    :param lam_min: smallest Hessian eigenvalue λ_min(∇²L).
    :param lam_max: largest Hessian eigenvalue λ_max(∇²L), the "sharpness".
    :param tol: curvature magnitudes up to ``tol`` count as 0 (the flat softmax directions,
        numerical error); None means 1e-6·max(|λ_min|, |λ_max|).
    """

    lr: float
    lam_min: float
    lam_max: float
    tol: float | None = None

    @property
    def curvature_tol(self) -> float:
        """The threshold below which a curvature counts as zero."""
        if self.tol is not None:
            return self.tol
        return 1e-6 * max(abs(self.lam_min), abs(self.lam_max))

    @property
    def threshold(self) -> float:
        """2/α, the largest curvature a step of size α can take without overshooting."""
        return 2.0 / self.lr

    @property
    def df_eigenvalue_range(self) -> tuple[float, float]:
        """(smallest, largest) eigenvalue of Df: (1 − αλ_max, 1 − αλ_min)."""
        return 1.0 - self.lr * self.lam_max, 1.0 - self.lr * self.lam_min

    @property
    def spectral_radius(self) -> float:
        """ρ(Df) = max(|1 − αλ_max|, |1 − αλ_min|) (Df is symmetric, its eigenvalues real)."""
        low, high = self.df_eigenvalue_range
        return max(abs(low), abs(high))

    @property
    def curvature_unstable(self) -> bool:
        """λ_max > 2/α: an eigenvalue of Df below −1, oscillating divergence."""
        return self.lam_max > self.threshold + self.curvature_tol

    @property
    def saddle(self) -> bool:
        """λ_min < 0: an eigenvalue of Df above +1, GD escaping a saddle."""
        return self.lam_min < -self.curvature_tol

    @property
    def kind(self) -> str:
        """``"stable"``, ``"curvature"``, ``"saddle"`` or ``"curvature+saddle"``."""
        kinds = [
            name
            for name, on in (("curvature", self.curvature_unstable), ("saddle", self.saddle))
            if on
        ]
        return "+".join(kinds) or "stable"

    def summary(self) -> str:
        """A few lines a user can read without knowing the code."""
        low, high = self.df_eigenvalue_range
        lines = [
            f"verdict: {self.kind.upper()}   rho(Df) = {self.spectral_radius:.6f}",
            f"  Hessian eigenvalues in [{self.lam_min:.6g}, {self.lam_max:.6g}];"
            f" stable range (0, 2/lr) = (0, {self.threshold:.6g});"
            f" sharpness / (2/lr) = {self.lam_max / self.threshold:.4f}",
            f"  Df eigenvalues in [{low:.6f}, {high:.6f}]",
        ]
        if self.curvature_unstable:
            lines.append(
                f"  curvature: lambda_max > 2/lr, Df eigenvalue {low:.4f} < -1: steps overshoot"
                " and oscillate along the top eigenvector (edge of stability when GD hovers here)"
            )
        if self.saddle:
            lines.append(
                f"  saddle: lambda_min < 0, Df eigenvalue {high:.4f} > +1: GD is pushed away along"
                " a negative-curvature direction, as from a saddle (growth without oscillation)"
            )
        if self.kind == "stable":
            lines.append(
                "  stable: every non-flat direction contracts; the eigenvalue 1 on the flat"
                " softmax-shift directions is neutral"
            )
        return "\n".join(lines)
