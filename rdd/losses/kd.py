r"""General distillation losses that run *alongside* RDD (RDD only re-weights the task loss).

* :func:`pixel_kd` – pixel-wise KD (Hinton et al. 2015 applied per pixel):
  :math:`T^2 \cdot \frac{1}{NHW}\sum_{n,h,w} \mathrm{KL}(p^t_{nhw} \,\|\, p^s_{nhw})`,
  with :math:`p = \mathrm{softmax}(z / T)` over classes.
* :class:`ChannelWiseDistillation` – CWD (Shu et al., ICCV 2021).
* :class:`AttentionTransfer` – AT (Zagoruyko & Komodakis, ICLR 2017).

Teacher inputs are detached inside (the teacher is frozen: gradients reach the student only).
Everything is computed in float32 (safe under autocast).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ._common import check_logits, resize

__all__ = [
    "pixel_kd",
    "channel_wise_distillation",
    "ChannelWiseDistillation",
    "attention_map",
    "attention_transfer",
    "AttentionTransfer",
]


def _check_pair(student: Tensor, teacher: Tensor, name: str, same_channels: bool = True) -> None:
    check_logits(student, f"{name}: student")
    check_logits(teacher, f"{name}: teacher")
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"{name}: batch sizes differ: student {student.shape[0]}, teacher {teacher.shape[0]}"
        )
    if same_channels and student.shape[1] != teacher.shape[1]:
        raise ValueError(
            f"{name}: channel counts differ: student {student.shape[1]}, teacher "
            f"{teacher.shape[1]} (add a 1×1 projection first)"
        )


def pixel_kd(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    r"""Pixel-wise KD: :math:`T^2\,\mathrm{mean}_{n,h,w}\,\mathrm{KL}(p^t\|p^s)`, a scalar.

    Args:
        student_logits: ``N×K×H×W``.
        teacher_logits: ``N×K×h×w``; resized bilinearly to the **student's** ``H×W`` if different
            (so the loss is defined on the student's grid).

    The KL is summed over classes and averaged over all ``N·H·W`` pixels (ignored label pixels
    included: KD needs no label). ``T²`` keeps gradient magnitudes comparable across temperatures.
    """
    _check_pair(student_logits, teacher_logits, "pixel_kd")
    if temperature <= 0:
        raise ValueError(f"pixel_kd: temperature must be > 0, got {temperature}")
    t = resize(teacher_logits.detach().float(), student_logits.shape[-2:])
    log_pt = F.log_softmax(t / temperature, dim=1)  # N×K×H×W
    log_ps = F.log_softmax(student_logits.float() / temperature, dim=1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(dim=1)  # N×H×W
    return kl.mean() * temperature**2


def channel_wise_distillation(student: Tensor, teacher: Tensor, tau: float = 4.0) -> Tensor:
    r"""CWD (Shu et al. 2021, Eq. 3–4): per channel, a softmax over the ``H·W`` spatial positions

    .. math:: \phi(y_c) = \mathrm{softmax}_{i}(y_{c,i} / \tau),\qquad
              L = \frac{\tau^2}{N C}\sum_{n,c}\sum_i \phi(y^T_{c})_i
                  \log\frac{\phi(y^T_{c})_i}{\phi(y^S_{c})_i}

    i.e. KL(teacher‖student) summed over positions, averaged over ``N×C`` channel maps.

    Args:
        student, teacher: ``N×C×H×W`` logits (or features with equal ``C``); the teacher is
            resized to the student's ``H×W`` if different.
    """
    _check_pair(student, teacher, "channel_wise_distillation")
    if tau <= 0:
        raise ValueError(f"channel_wise_distillation: tau must be > 0, got {tau}")
    n, c = student.shape[:2]
    t = resize(teacher.detach().float(), student.shape[-2:]).reshape(n, c, -1)  # N×C×HW
    s = student.float().reshape(n, c, -1)
    log_pt = F.log_softmax(t / tau, dim=2)
    log_ps = F.log_softmax(s / tau, dim=2)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(dim=2)  # N×C
    return kl.mean() * tau**2


class _OneParameterLoss(nn.Module):
    """A distillation function with one positive hyper-parameter, as a module: the value is
    checked once and stored under its own name (shown by ``repr``)."""

    def __init__(self, name: str, value: float) -> None:
        super().__init__()
        if value <= 0:
            raise ValueError(f"{type(self).__name__}: {name} must be > 0, got {value}")
        self._param = name
        setattr(self, name, float(value))

    def extra_repr(self) -> str:
        return f"{self._param}={getattr(self, self._param)}"


class ChannelWiseDistillation(_OneParameterLoss):
    """Channel-wise distillation (CWD, Shu et al., ICCV 2021); see :func:`channel_wise_distillation`."""

    def __init__(self, tau: float = 4.0) -> None:
        super().__init__("tau", tau)

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        return channel_wise_distillation(student, teacher, self.tau)


def attention_map(feat: Tensor, p: float = 2.0) -> Tensor:
    r"""Spatial attention ``A = Σ_c |F_c|^p`` of ``N×C×H×W`` features → ``N×H×W`` (unnormalised)."""
    return feat.float().abs().pow(p).sum(dim=1)


def attention_transfer(student_feat: Tensor, teacher_feat: Tensor, p: float = 2.0) -> Tensor:
    r"""AT (Zagoruyko & Komodakis 2017, Eq. 2, as in the authors' code):

    .. math:: Q = \mathrm{vec}(A) / \|\mathrm{vec}(A)\|_2,\qquad
              L = \mathrm{mean}_{n,i}\,(Q^S_{n,i} - Q^T_{n,i})^2

    ``A`` from :func:`attention_map`. Channel counts may differ (the maps have one channel). If the
    spatial sizes differ, the teacher's map is resized bilinearly to the student's ``H×W`` before
    normalisation. The mean runs over ``N·H·W`` (the authors' ``(at(x) - at(y)).pow(2).mean()``);
    scale it with the loss weight (they use β = 10³).
    """
    check_logits(student_feat, "attention_transfer: student_feat")
    check_logits(teacher_feat, "attention_transfer: teacher_feat")
    if student_feat.shape[0] != teacher_feat.shape[0]:
        raise ValueError(
            f"attention_transfer: batch sizes differ: student {student_feat.shape[0]}, "
            f"teacher {teacher_feat.shape[0]}"
        )
    a_s = attention_map(student_feat, p).unsqueeze(1)  # N×1×H×W
    a_t = resize(attention_map(teacher_feat.detach(), p).unsqueeze(1), a_s.shape[-2:])
    q_s = F.normalize(a_s.flatten(1), dim=1)  # N×HW
    q_t = F.normalize(a_t.flatten(1), dim=1)
    return (q_s - q_t).pow(2).mean()


class AttentionTransfer(_OneParameterLoss):
    """Attention transfer (AT, Zagoruyko & Komodakis, ICLR 2017); see :func:`attention_transfer`."""

    def __init__(self, p: float = 2.0) -> None:
        super().__init__("p", p)

    def forward(self, student_feat: Tensor, teacher_feat: Tensor) -> Tensor:
        return attention_transfer(student_feat, teacher_feat, self.p)
