"""Every trainer's configuration, in one light module (no torch): each field's default and help text is
written once, here, and ``faceforge train <family>`` generates its options from these fields
(:mod:`training.options`). The trainer modules re-export their config (``training.gpen.GPENTrainConfig``).

All fields land in the run folder's ``config.json``. The ``RUNTIME`` fields of a trainer (``resume``,
``stop_after_steps``, ``time_limit_min``, ``threads``, ``device``, ...) only steer one invocation: on
``--resume`` every other field comes from the run's stored config (:func:`training.runs.resume_config`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from training.options import opt

# --- help texts shared by several trainers (each field still has its own default) --------------------
RUNS_DIR = opt("Parent folder of the numbered run folders (<runs-dir>/<family>/<NNN>).", path="dir")
RESUME = opt("Continue the run in this folder from its last.pt (its stored config is used).", path="dir",
             exists=True)
TIME_LIMIT = opt("Stop and save after this many minutes (resume later).", name="--time-limit", min=0,
                 min_open=True)
STOP_AFTER = opt("Stop and save after N steps (of this invocation).", name="--stop-after", min=1)
THREADS = opt("torch CPU threads [default: torch's].", min=1)
DEVICE = opt("auto, cpu, cuda or cuda:N.")
WORKERS = opt("DataLoader workers.", name="--workers", min=0)
PROGRESS = opt("Show a progress bar (tqdm).")
LOG_EVERY = opt("Steps between metrics.csv rows.", min=1)
SAMPLE_EVERY = opt("Steps between sample grids (samples/step_<N>.png).", min=1)
SEED = opt("Seed of the data order, initialisation and augmentation.")
FACE_FOLDER = "Folder of aligned faces [default: $FACEFORGE_DATA/utkface or ../shared/data/utkface]"


@dataclass
class EmotionConfig:
    """mini-Xception on FER2013 (:mod:`training.emotion`)."""

    epochs: int = field(default=60, metadata=opt("Passes over FER2013 train.", min=1))
    batch_size: int = field(default=128, metadata=opt("Images per step.", min=8))
    lr: float = field(default=4e-3, metadata=opt("Peak one-cycle learning rate (AdamW).", min=0, min_open=True))
    weight_decay: float = field(default=5e-4, metadata=opt("AdamW weight decay (decoupled).", min=0))
    label_smoothing: float = field(default=0.1, metadata=opt("Label smoothing of the cross-entropy.", min=0, max=0.5))
    val_fraction: float = field(default=0.1, metadata=opt(
        "Stratified validation split taken from FER2013 train; 0 trains on all of it and keeps the last epoch "
        "(choose the epochs from an earlier run's validation).", min=0, max=1, max_open=True))
    rotate_deg: float = field(default=12.0, metadata=opt("Augmentation: max rotation, degrees.", min=0))
    scale: float = field(default=0.12, metadata=opt("Augmentation: scale in [1 - s, 1 + s].", min=0, max=1))
    translate: float = field(default=0.10, metadata=opt("Augmentation: max shift, fraction of the side.",
                                                        min=0, max=1))
    erase_prob: float = field(default=0.4, metadata=opt("Probability of one random-erasing box per image.",
                                                        min=0, max=1))
    seed: int = field(default=0, metadata=SEED)
    limit: int | None = field(default=None, metadata=opt("Use only N training images (smoke runs).", min=100))
    threads: int | None = field(default=None, metadata=THREADS)
    runs_dir: str = field(default="runs", metadata=RUNS_DIR)
    data_root: str | None = field(default=None, metadata=opt(
        "Data root holding fer2013/{train,test} [default: $FACEFORGE_DATA or ../shared/data].", name="--data",
        path="dir"))
    teacher: str | None = field(default=None, metadata=opt(
        "Knowledge-distillation teacher: a mini-Xception checkpoint, or 'default' (the shipped one)."))
    kd_alpha: float = field(default=0.7, metadata=opt("Weight of the distillation term (with --teacher; "
                                                      "1 - alpha: hard labels).", min=0, max=1))
    kd_temperature: float = field(default=3.0, metadata=opt("Softmax temperature T of the distillation term.",
                                                            min=0, min_open=True))
    ema_decay: float | None = field(default=None, metadata=opt(
        "Keep and validate an exponential moving average of the weights with this decay per step (e.g. 0.999).",
        name="--ema", min=0, max=1, min_open=True, max_open=True))
    init_from: str | None = field(default=None, metadata=opt(
        "Start from this checkpoint ('default': the shipped one)."))
    time_limit_min: float | None = field(default=None, metadata=opt(
        "Stop after the first epoch that ends past this many minutes (resume to finish).", name="--time-limit",
        min=0, min_open=True))
    swa_epochs: int = field(default=0, metadata=opt(
        "Stochastic weight averaging: the last N of --epochs run at the constant --swa-lr and the weights at "
        "their ends are averaged (BatchNorm statistics recomputed on train images); 0: off.", min=0))
    swa_lr: float | None = field(default=None, metadata=opt(
        "Constant learning rate of the SWA epochs [default: --lr / 4].", min=0, min_open=True))
    qat_epochs: int = field(default=0, metadata=opt(
        "Quantization-aware fine-tune: the last N of --epochs run at the constant --qat-lr through a simulated "
        "full-integer int8 forward pass (frozen BatchNorm) with a term pulling it to the float top-1; the last "
        "epoch is kept; 0: off. Not with --swa-epochs or --ema.", min=0))
    qat_lr: float | None = field(default=None, metadata=opt(
        "Constant learning rate of the QAT epochs [default: --lr / 10].", min=0, min_open=True))
    qat_weight: float = field(default=1.0, metadata=opt(
        "Weight of the cross-entropy of the int8 simulation against the float top-1 in the QAT epochs.", min=0))


@dataclass
class AgeConfig:
    """The age estimator (age_resnet) on UTKFace (:mod:`training.age`)."""

    epochs: int = field(default=30, metadata=opt("Passes over the training part.", min=1))
    batch_size: int = field(default=128, metadata=opt("Images per step.", min=8))
    lr: float = field(default=3e-3, metadata=opt("Peak one-cycle learning rate (AdamW).", min=0, min_open=True))
    weight_decay: float = field(default=5e-4, metadata=opt("AdamW weight decay.", min=0))
    size: int = field(default=64, metadata=opt("Input side.", choices=(64, 96)))
    loss: str = field(default="dldl", metadata=opt(
        "dldl: Gaussian label distribution KL + L1 on the expected age (Gao et al. 2018); dex: cross-entropy on "
        "the age bin (Rothe et al. 2015); l1: L1 on the expected age.", choices=("dldl", "dex", "l1")))
    label_sigma: float = field(default=2.0, metadata=opt("dldl: Gaussian label distribution sigma, years.",
                                                         min=0, min_open=True))
    l1_weight: float = field(default=1.0, metadata=opt("dldl: weight of the L1 term on the expected age.", min=0))
    faces: str = field(default="chip", metadata=opt(
        "chip: UTKFace chips resized; align: BlazeFace + utkface template (as the translator).",
        choices=("chip", "align")))
    val_fraction: float = field(default=0.1, metadata=opt("Validation part of the seeded split.", min=0, max=1, max_open=True))
    test_fraction: float = field(default=0.1, metadata=opt("Test part of the seeded split.", min=0, max=1, max_open=True))
    holdout: list[str] = field(default_factory=list, metadata=opt(
        "Folder whose UTKFace files always go to the test split (repeatable), e.g. the testA/ and testB/ of the "
        "CycleGAN age split.", path="dir", exists=True))
    seed: int = field(default=0, metadata=opt("Seed of the split, subset and training."))
    limit: int | None = field(default=None, metadata=opt("Use only N UTKFace images (smoke runs).", min=100))
    min_age: int = field(default=0, metadata=opt("Keep records with min_age <= age.", min=0))
    threads: int | None = field(default=None, metadata=THREADS)
    runs_dir: str = field(default="runs", metadata=RUNS_DIR)
    data: str | None = field(default=None, metadata=opt(
        "UTKFace folder [default: $FACEFORGE_DATA/utkface or ../shared/data/utkface].", path="dir"))
    progress: bool = field(default=True, metadata=PROGRESS)
    widths: list[int] | None = field(default=None, metadata=opt(
        "AgeNet stage widths, comma-separated, e.g. 16,32,64,128 [default: the registry's 32,64,128,256].",
        sep=","))
    resume: str | None = field(default=None, metadata=opt(
        "Continue the run in this folder from its last.pt (same split and schedule).", path="dir", exists=True))
    time_limit: float | None = field(default=None, metadata=opt(
        "Minutes of training after which the run stops after its epoch, resumable.", min=0, min_open=True))


@dataclass
class CycleGANConfig:
    """CycleGAN translators on unpaired folders (:mod:`training.cyclegan`)."""

    dataroot: str = field(default="", metadata=opt(
        "Folder with trainA/ trainB/ (testA/ testB/ for sample grids), e.g. made by `python -m training.unpaired "
        "utkface-age --dest data/utkface_age`. Required unless --resume.", name="--data", path="dir",
        show_default=False))
    generator: str = field(default="cyclegan_resnet9", metadata=opt("Generator architecture (registry name).", choices=("cyclegan_resnet9", "cyclegan_mobile")))
    generator_kwargs: dict = field(default_factory=dict, metadata=opt("Overrides of the spec's constructor args.",
                                                                      cli=False))
    ndf: int = field(default=64, metadata=opt("Discriminator width.", min=1))
    n_layers_d: int = field(default=3, metadata=opt("Discriminator layers (3 = 70x70 PatchGAN).", min=1))
    norm_d: str = field(default="instance", metadata=opt(cli=False))
    load_size: int = field(default=286, metadata=opt("Resize side before the random crop.", min=4))
    crop_size: int = field(default=256, metadata=opt("Side of the random crop (the generator's input).", min=4))
    batch_size: int = field(default=1, metadata=opt("Images per domain and step.", min=1))
    n_epochs: int = field(default=100, metadata=opt("Epochs at the initial lr.", name="--epochs", min=0))
    n_epochs_decay: int = field(default=100, metadata=opt("Epochs of linear lr decay to 0.", name="--epochs-decay",
                                                          min=0))
    steps_per_epoch: int | None = field(default=None, metadata=opt(
        "Cap on steps per epoch [default: max(|A|, |B|) // batch size].", min=1))
    lr: float = field(default=2e-4, metadata=opt("Adam learning rate (constant, then linear decay).", min=0, min_open=True))
    beta1: float = field(default=0.5, metadata=opt("Adam beta1.", min=0, max=1))
    beta2: float = field(default=0.999, metadata=opt("Adam beta2.", min=0, max=1))
    gan_mode: str = field(default="lsgan", metadata=opt("lsgan (Mao et al. 2017) or vanilla (BCE with logits).",
                                                        choices=("lsgan", "vanilla")))
    lambda_cycle: float = field(default=10.0, metadata=opt("Weight of the cycle-consistency L1 terms.", min=0))
    lambda_identity: float = field(default=0.5, metadata=opt("Identity weight as a fraction of --lambda-cycle "
                                                             "(0: off).", min=0))
    lambda_face_id: float = field(default=0.0, metadata=opt(
        "Weight of the face-identity term |e(G(x)) - e(x)|^2, both directions (e: dlib's face-recognition "
        "ResNet on its chip of the utkface-aligned face; 0: off).", min=0))
    lambda_face_feat: float = field(default=0.0, metadata=opt(
        "Weight of the face-feature term (mean L1 of the same network's six feature maps, G(x) vs x; 0: off).",
        min=0))
    pool_size: int = field(default=50, metadata=opt("History of generated images for D (Shrivastava et al. 2017).",
                                                    min=0))
    teacher: str | None = field(default=None, metadata=opt(
        "Run folder of a trained teacher: distil into --generator (L1 to the teacher + GAN).", path="dir",
        exists=True))
    init_from: str | None = field(default=None, metadata=opt(
        "Start all four networks from this cyclegan run folder / last.pt (weights only: new optimizers and "
        "schedule), e.g. a second stage with other loss weights.", path="any", exists=True))
    lambda_distill: float = field(default=10.0, metadata=opt("Weight of |G(x) - T(x)|_1 when distilling.", min=0))
    seed: int = field(default=0, metadata=SEED)
    log_every: int = field(default=100, metadata=LOG_EVERY)
    sample_every: int = field(default=1000, metadata=opt("Steps between sample grids (also at each epoch end).",
                                                         min=1))
    save_every: int = field(default=0, metadata=opt("Steps between mid-epoch checkpoints (0: at epoch ends only).",
                                                    min=0))
    n_samples: int = field(default=4, metadata=opt("Fixed images per domain in the sample grids.", min=1))
    runs_dir: str = field(default="runs", metadata=RUNS_DIR)
    # runtime only (training.cyclegan.RUNTIME_FIELDS)
    resume: str | None = field(default=None, metadata=RESUME)
    stop_after_steps: int | None = field(default=None, metadata=STOP_AFTER)
    time_limit_min: float | None = field(default=None, metadata=TIME_LIMIT)
    threads: int | None = field(default=None, metadata=THREADS)
    num_workers: int = field(default=2, metadata=WORKERS)
    device: str = field(default="auto", metadata=DEVICE)
    progress: bool = field(default=True, metadata=PROGRESS)


@dataclass
class FrontalizeConfig:
    """pix2pix frontalization generators on pose pairs (:mod:`training.frontalize`)."""

    data: str = field(default="cache/pose_pairs", metadata=opt(
        "Pose-pair cache made by `faceforge train frontalize-pairs`.", path="dir"))
    input: str = field(default="rerender", metadata=opt(
        "rerender: the profile rendered back to frontal (Rotate-and-Render); profile: the rendered profile itself "
        "(pix2pix turns the head).", choices=("rerender", "profile")))
    generator: str = field(default="pix2pix_mobile", metadata=opt("Generator architecture (registry name).", 
        choices=("pix2pix_mobile", "pix2pix_unet256", "pix2pix_unet128")))
    generator_kwargs: dict = field(default_factory=dict, metadata=opt("Overrides of the spec's constructor args.",
                                                                      cli=False))
    ndf: int = field(default=64, metadata=opt(
        "PatchGAN width (the discriminator dominates a step's cost: 32 is ~4x cheaper).", min=1))
    n_layers_d: int = field(default=3, metadata=opt("Discriminator layers (3 = 70x70 PatchGAN).", min=1))
    norm_d: str = field(default="batch", metadata=opt(cli=False))  # pix2pix's discriminator uses BatchNorm
    crop_size: int | None = field(default=None, metadata=opt(
        "Training crop side [default: the generator's input side, 256 (128 for U-Net-128)].", min=16))
    load_size: int | None = field(default=None, metadata=opt(
        "Resize side before the random crop [default: crop size * 286 / 256, pix2pix's jitter].", min=16))
    batch_size: int = field(default=4, metadata=opt("pix2pix used 1; >= 4 keeps BatchNorm statistics sane.",
                                                    min=1))
    n_epochs: int = field(default=100, metadata=opt("Epochs at the initial lr.", name="--epochs", min=0))
    n_epochs_decay: int = field(default=100, metadata=opt("Epochs of linear lr decay to 0.", name="--epochs-decay",
                                                          min=0))
    steps_per_epoch: int | None = field(default=None, metadata=opt(
        "Cap on steps per epoch [default: training pairs // batch size].", min=1))
    lr: float = field(default=2e-4, metadata=opt("Adam learning rate (constant, then linear decay).", min=0, min_open=True))
    beta1: float = field(default=0.5, metadata=opt("Adam beta1.", min=0, max=1))
    beta2: float = field(default=0.999, metadata=opt("Adam beta2.", min=0, max=1))
    gan_mode: str = field(default="vanilla", metadata=opt("vanilla (the paper) or lsgan.",
                                                          choices=("vanilla", "lsgan")))
    lambda_l1: float = field(default=100.0, metadata=opt("Weight of the L1 term to the frontal target.", min=0))
    lambda_face_id: float = field(default=0.0, metadata=opt(
        "Weight of the face-identity term |e(G(x)) - e(y)|^2 to the true frontal y (e: dlib's face-recognition "
        "ResNet on its chip of the utkface-aligned crop; 0: off).", min=0))
    lambda_face_feat: float = field(default=0.0, metadata=opt(
        "Weight of the face-feature term (mean L1 of the same network's six feature maps, G(x) vs y; 0: off).",
        min=0))
    id_views: int = field(default=0, metadata=opt(
        "Measure the face terms on this many randomly re-framed, blurred and re-sampled views of G(x) and "
        "average (0: on G(x) itself), so G cannot pass them with pixel patterns only dlib reads.", min=0))
    init_from: str | None = field(default=None, metadata=opt(
        "Start G and D from this frontalize run folder's last.pt, or G alone (D fresh) from generator weights "
        "such as faceforge/weights/pix2pix_frontalize.pt (weights only: fresh optimizers and schedule), e.g. a "
        "fine-tune with the face terms on.", path="any", exists=True))
    seed: int = field(default=0, metadata=SEED)
    log_every: int = field(default=100, metadata=LOG_EVERY)
    sample_every: int = field(default=1000, metadata=SAMPLE_EVERY)
    eval_every: int = field(default=0, metadata=opt("Steps between held-out PSNR/SSIM (0: at epoch ends).", min=0))
    save_every: int = field(default=0, metadata=opt("Steps between mid-epoch checkpoints (0: at epoch ends only).",
                                                    min=0))
    n_samples: int = field(default=4, metadata=opt("Held-out pairs in the sample grids.", min=1))
    runs_dir: str = field(default="runs", metadata=RUNS_DIR)
    # runtime only (training.frontalize.RUNTIME_FIELDS)
    resume: str | None = field(default=None, metadata=RESUME)
    stop_after_steps: int | None = field(default=None, metadata=STOP_AFTER)
    time_limit_min: float | None = field(default=None, metadata=TIME_LIMIT)
    threads: int | None = field(default=None, metadata=THREADS)
    num_workers: int = field(default=2, metadata=WORKERS)
    device: str = field(default="auto", metadata=DEVICE)
    progress: bool = field(default=True, metadata=PROGRESS)


def _yaw_buckets() -> list[list[float]]:
    from faceforge.data.pose_pairs import YAW_BUCKETS

    return [list(b) for b in YAW_BUCKETS]


@dataclass
class PosePairConfig:
    """How pose pairs are synthesized (:mod:`training.pose_pairs`; stored in ``index.json``)."""

    source: str = field(default="", metadata=opt(
        "UTKFace folder [default: $FACEFORGE_DATA/utkface or ../shared/data/utkface].", path="dir", exists=True,
        show_default=False))
    dest: str = field(default="cache/pose_pairs", metadata=opt("Cache folder (git-ignored); its index.json is "
                                                                "replaced.", path="dir"))
    faces: int = field(default=100, metadata=opt("Near-frontal faces to use; each gives one pair per yaw bucket.",
                                                 min=1))
    size: int = field(default=256, metadata=opt("Crop side.", min=32))
    template: str = field(default="utkface", metadata=opt("Alignment template of the frontal target."))
    max_source_yaw: float = field(default=8.0, metadata=opt(
        "Keep faces whose Face Mesh yaw is below this (degrees).", min=0, max=45, min_open=True))
    buckets: list = field(default_factory=lambda: _yaw_buckets(), metadata=opt("Yaw buckets (absolute degrees).",
                                                                              cli=False))
    test_fraction: float = field(default=0.1, metadata=opt("Faces held out for metrics.", min=0, max=1,
                                                           max_open=True))
    margin: float = field(default=0.25, metadata=opt(
        "Head ring outside the landmarks' hull (fraction of the hull's radius).", min=0))
    pivot_depth: float = field(default=0.1, metadata=opt("Rotation axis behind the cheek contour, in face widths."))
    recentre: bool = field(default=True, metadata=opt("Centre the rotated landmarks' box (render_yaw)."))
    measure_yaw: bool = field(default=True, metadata=opt("Run Face Mesh on each profile (else yaw_mesh = null)."))
    seed: int = field(default=0, metadata=SEED)
    threads: int = field(default=1, metadata=opt("LiteRT threads.", min=1))
    grid_faces: int = field(default=8, metadata=opt("Rows of grid.png.", min=1))
    progress: bool = field(default=True, metadata=PROGRESS)


@dataclass
class GPENTrainConfig:
    """GPEN blind face restoration (:mod:`training.gpen`)."""

    data: str = field(default="", metadata=opt(
        FACE_FOLDER + "; files whose name's CRC-32 is 0 mod 20 are held out for benchmarks.", path="dir",
        show_default=False))
    size: int = field(default=64, metadata=opt("Face side in pixels (64 or 128 on a CPU).",
                                               choices=(16, 32, 64, 128, 256, 512)))
    style_dim: int = field(default=256, metadata=opt("Latent (style) width.", min=1))
    n_mlp: int = field(default=8, metadata=opt("Mapping layers.", min=1))
    channel_multiplier: float = field(default=1, metadata=opt("Channel multiplier of the generator.", min=0, min_open=True))
    narrow: float = field(default=0.125, metadata=opt("Width factor (published GPEN-BFR-256: 0.5; 512: 1).", min=0,
                                                      min_open=True))
    residual: bool = field(default=False, metadata=opt(
        "faceforge's option, not the reference GPEN: output = input + g * decoder, g a learned scalar from 0 "
        "(starts at the input's PSNR; see faceforge.models.gpen.GPEN)."))
    batch_size: int = field(default=8, metadata=opt("Faces per step.", min=1))
    total_steps: int = field(default=20000, metadata=opt("Training length in steps.", name="--steps", min=1))
    lr: float = field(default=0.002, metadata=opt("Adam learning rate of G and D.", min=0, min_open=True))
    beta1: float = field(default=0.0, metadata=opt("Adam beta1.", min=0, max=1))
    beta2: float = field(default=0.99, metadata=opt("Adam beta2.", min=0, max=1))
    lambda_adv: float = field(default=0.1, metadata=opt("Weight of the adversarial term.", min=0))
    lambda_l1: float = field(default=1.0, metadata=opt("Weight of the L1 term to the clean face.", min=0))
    lambda_id: float = field(default=0.1, metadata=opt(
        "Identity loss (needs faceforge.models.dlib_resnet; skipped with a note otherwise).", min=0))
    lambda_feat: float = field(default=0.1, metadata=opt("Face-feature loss (same network).", min=0))
    r1_gamma: float = field(default=10.0, metadata=opt("R1 penalty weight.", min=0))
    r1_interval: int = field(default=16, metadata=opt("Lazy R1: every N D steps.", min=1))
    ema_kimg: float = field(default=10.0, metadata=opt("G_ema half-life in kimg.", min=0, min_open=True))
    ema_rampup: float = field(default=0.05, metadata=opt("Cap the half-life at this fraction of the images seen.",
                                                         min=0))
    mirror: bool = field(default=True, metadata=opt("Random x-flips of the training faces."))
    limit: int | None = field(default=None, metadata=opt("Use only N training images (seeded subset).", min=2))
    init_from: str | None = field(default=None, metadata=opt(
        "Start from this gpen run folder's last.pt (G, G_ema and D) or a GPEN weights file (G and G_ema; D "
        "fresh): weights only, fresh optimizers, step 0, e.g. to continue with changed loss weights.",
        path="any", exists=True))
    seed: int = field(default=0, metadata=SEED)
    # 100 / 1000: what `faceforge train gpen` always used (the dataclass said 50 / 500 while the click options
    # repeated the shared 100 / 1000; the command-line figures are the ones the README's runs were made with)
    log_every: int = field(default=100, metadata=LOG_EVERY)
    sample_every: int = field(default=1000, metadata=SAMPLE_EVERY)
    eval_every: int = field(default=500, metadata=opt(
        "Steps between held-out PSNR evaluations (moderate severity, 64 faces).", min=1))
    save_every: int = field(default=250, metadata=opt("Steps between last.pt / G_ema.pt saves.", min=0))
    n_val: int = field(default=64, metadata=opt("Held-out faces of the PSNR evaluation.", min=1))
    runs_dir: str = field(default="runs", metadata=RUNS_DIR)
    cache_dir: str | None = field(default=None, metadata=opt(
        "Cache of the decoded faces (.npy) [default: none].", path="dir"))
    # runtime only (training.gpen.RUNTIME_FIELDS)
    resume: str | None = field(default=None, metadata=RESUME)
    stop_after_steps: int | None = field(default=None, metadata=STOP_AFTER)
    time_limit_min: float | None = field(default=None, metadata=TIME_LIMIT)
    threads: int | None = field(default=None, metadata=THREADS)
    device: str = field(default="auto", metadata=DEVICE)
    progress: bool = field(default=True, metadata=PROGRESS)

    def generator_config(self) -> dict[str, Any]:
        return {"size": self.size, "style_dim": self.style_dim, "n_mlp": self.n_mlp,
                "channel_multiplier": self.channel_multiplier, "narrow": self.narrow,
                **({"residual": True} if self.residual else {})}

    def discriminator_config(self) -> dict[str, Any]:
        """StyleGAN2 residual D with GPEN's widths: ``min(base // r, max)`` = C[r] of the generator."""
        from faceforge.models.gpen import gpen_channels

        top = gpen_channels(self.size, self.channel_multiplier, self.narrow)
        return {"resolution": self.size, "channel_base": top * self.size,
                "channel_max": gpen_channels(4, self.channel_multiplier, self.narrow),
                "mbstd_group_size": min(4, self.batch_size)}


def _stylegan2_cache_dir() -> str:
    from faceforge.models.cards import user_cache_dir

    return str(user_cache_dir() / "stylegan2")


STYLEGAN2_PRESETS: dict[str, dict[str, Any]] = {
    # 32 px, 1.05 M G parameters (128 feature maps up to 16 px, 64 at 32 px): measured 0.40 s/step (wall) at
    # batch 16 with 2 threads, 0.70 CPU-s/step with 1 thread, on a 2-core machine shared with other jobs.
    "cpu": dict(resolution=32, z_dim=128, w_dim=128, channel_base=2048, channel_max=128, mapping_layers=2,
                batch_size=16, total_kimg=300.0, swd_every=2000, sample_every=500),
    # 64 / 128 px with the "auto" configuration of StyleGAN2-ADA (channel_base 16384, map 2, batch 32).
    "gpu": dict(resolution=64, z_dim=512, w_dim=512, channel_base=16384, channel_max=512, mapping_layers=2,
                batch_size=32, total_kimg=2000.0, swd_every=2000, sample_every=500),
    "gpu128": dict(resolution=128, z_dim=512, w_dim=512, channel_base=16384, channel_max=512, mapping_layers=2,
                   batch_size=32, total_kimg=2000.0, swd_every=2000, sample_every=500),
    # tests and smoke runs
    "tiny": dict(resolution=16, z_dim=16, w_dim=16, channel_base=128, channel_max=16, mapping_layers=2,
                 batch_size=4, total_kimg=0.1, swd_every=0, sample_every=10, swd_images=16),
}
"""Named starting points of :class:`StyleGAN2TrainConfig`; explicit options override single fields."""


@dataclass
class StyleGAN2TrainConfig:
    """StyleGAN2 on aligned faces, or a fine-tune (:mod:`training.stylegan2`). The defaults are the ``cpu``
    preset (:data:`STYLEGAN2_PRESETS`)."""

    data: str = field(default="", metadata=opt(FACE_FOLDER + ".", path="dir", show_default=False))
    preset: str = field(default="cpu", metadata=opt(
        "cpu: 32 px, ~0.4 s/step on 2 cores; gpu: 64 px / gpu128: 128 px (StyleGAN2-ADA 'auto' networks, batch 32, "
        "bf16); tiny: smoke runs. Options below override single fields.", choices=tuple(STYLEGAN2_PRESETS)))
    resolution: int = field(default=32, metadata=opt("Output side (power of two).", min=8))
    z_dim: int = field(default=128, metadata=opt("Latent z width.", min=1))
    w_dim: int = field(default=128, metadata=opt("Intermediate latent w width.", min=1))
    channel_base: int = field(default=2048, metadata=opt("Feature maps at r: min(channel_base // r, channel_max).",
                                                         min=1))
    channel_max: int = field(default=128, metadata=opt("Cap on feature maps per layer.", min=1))
    mapping_layers: int = field(default=2, metadata=opt("8 in the paper; 2 in StyleGAN2-ADA's 'auto' config.",
                                                        min=1))
    batch_size: int = field(default=16, metadata=opt("Images per step.", min=1))
    total_kimg: float = field(default=300.0, metadata=opt(
        "Training length in thousands of real images shown to D [10 when fine-tuning].", name="--kimg", min=0,
        min_open=True))
    lr: float = field(default=0.0025, metadata=opt("Adam lr [0.002 when fine-tuning].", min=0, min_open=True))
    g_lr: float | None = field(default=None, metadata=opt(
        "G's own Adam lr (two time-scale update rule, Heusel et al. 2017) [default: --lr]; e.g. lr / 10 when "
        "growing, so the grown G cannot outrun a D that has only begun to see the new level's detail.",
        min=0, min_open=True))
    beta1: float = field(default=0.0, metadata=opt("Adam beta1.", min=0, max=1))
    beta2: float = field(default=0.99, metadata=opt("Adam beta2.", min=0, max=1))
    r1_gamma: float | None = field(default=None, metadata=opt(
        "R1 weight [auto: 0.0002 * resolution^2 / batch].", min=0))
    r1_interval: int = field(default=16, metadata=opt("Lazy R1: every N D steps.", min=1))
    pl_weight: float = field(default=0.0, metadata=opt("Path-length regularization weight (paper: 2; 0: off).",
                                                       min=0))
    pl_interval: int = field(default=4, metadata=opt("Lazy path length: every N G steps.", min=1))
    pl_decay: float = field(default=0.01, metadata=opt("Decay of the path-length running mean.", min=0, max=1))
    pl_batch_shrink: int = field(default=2, metadata=opt("Batch divisor of the path-length pass.", min=1))
    style_mixing_prob: float = field(default=0.9, metadata=opt("Probability of style mixing per batch.", min=0, max=1))
    freeze_below: int = field(default=0, metadata=opt(
        "Freeze G's mapping network and its synthesis blocks up to this resolution (e.g. 32 when growing from the "
        "32 px generator): only the new levels train, so the source's coarse structure cannot drift [0: none].",
        min=0))
    d_warmup_steps: int = field(default=0, metadata=opt(
        "First N steps of the run train only D (G and G_ema held): a fresh D against a pretrained or grown G "
        "learns what separates them before G follows its gradient.", min=0))
    d_fade_kimg: float = field(default=0.0, metadata=opt(
        "With --grow-from a run folder: fade D's new top block in over this many kimg (after --d-warmup-steps), "
        "starting from the source run's trained D on 2x-downsampled images (progressive growing; 0: no fade, "
        "D's fromRGB and new block fresh).", min=0))
    ema_kimg: float | None = field(default=None, metadata=opt(
        "G_ema half-life in kimg [auto: batch * 10 / 32].", min=0, min_open=True))
    ema_rampup: float | None = field(default=0.05, metadata=opt(
        "Cap the half-life at this fraction of the images seen (0: off).", min=0))
    mirror: bool = field(default=True, metadata=opt("Random x-flips of the reals."))
    amp: str = field(default="auto", metadata=opt("auto: bf16 autocast on CUDA only.", choices=("auto", "off", "bf16")))
    fused_modconv: bool = field(default=False, metadata=opt(
        "Grouped-conv modulation in training (off: faster on a CPU)."))
    limit: int | None = field(default=None, metadata=opt("Use only N images (seeded subset).", min=2))
    finetune_from: str | None = field(default=None, metadata=opt(
        "Start from a stylegan2 run folder / last.pt (G, D, G_ema), a StyleGAN2 generator checkpoint (faceforge, "
        "rosinality .pt, NVlabs .pkl: fresh D) or 'default' (the shipped generator); the architecture comes from "
        "it. For toonify and your own faces (faceforge prepare).", metavar="default|PATH"))
    grow_from: str | None = field(default=None, metadata=opt(
        "Start a higher --resolution run from a lower-resolution StyleGAN2 (a run folder / last.pt, a generator "
        "checkpoint or 'default'): its mapping and synthesis layers are copied, the new top blocks start fresh "
        "with a zero ToRGB (the first samples are its faces upsampled); D keeps a source run's blocks, the rest "
        "fresh (progressive growing). Channels must match: keep its --channel-base / --channel-max.",
        metavar="default|PATH"))
    seed: int = field(default=0, metadata=SEED)
    log_every: int = field(default=100, metadata=LOG_EVERY)
    sample_every: int = field(default=500, metadata=SAMPLE_EVERY)
    n_samples: int = field(default=32, metadata=opt("Sample grid images (8 per row).", min=1))
    swd_every: int = field(default=2000, metadata=opt("Steps between SWD evaluations (0: off).", min=0))
    swd_images: int = field(default=2048, metadata=opt("Images per set for SWD.", min=2))
    swd_descriptors: int = field(default=64, metadata=opt("7x7 descriptors per image and pyramid level.", min=1))
    save_every: int = field(default=500, metadata=opt("Steps between last.pt / G_ema.pt saves.", min=0))
    runs_dir: str = field(default="runs", metadata=RUNS_DIR)
    # runtime only (training.stylegan2.RUNTIME_FIELDS)
    resume: str | None = field(default=None, metadata=RESUME)
    stop_after_steps: int | None = field(default=None, metadata=STOP_AFTER)
    time_limit_min: float | None = field(default=None, metadata=TIME_LIMIT)
    threads: int | None = field(default=None, metadata=THREADS)
    device: str = field(default="auto", metadata=DEVICE)
    progress: bool = field(default=True, metadata=PROGRESS)
    cache_dir: str | None = field(default_factory=_stylegan2_cache_dir, metadata=opt(
        "Cache of the decoded image array (.npy) [default: faceforge's user cache folder/stylegan2; never the "
        "source tree].", path="dir"))

    def resolved_r1_gamma(self) -> float:
        """R1 weight gamma (the "auto" heuristic when unset)."""
        return self.r1_gamma if self.r1_gamma is not None else 0.0002 * self.resolution ** 2 / self.batch_size

    def resolved_ema_kimg(self) -> float:
        """G_ema half-life in kimg (the "auto" heuristic when unset)."""
        return self.ema_kimg if self.ema_kimg is not None else self.batch_size * 10 / 32


@dataclass
class AttributesConfig:
    """The attribute classifier (age, gender) of the InterFaceGAN edits (:mod:`training.attributes`)."""

    output: str = field(default="", metadata=opt(
        "Checkpoint to write (a JSON card goes beside it), e.g. faceforge/weights/attributes_utkface32.pt.",
        name="--output", aliases=("-o",), path="file", show_default=False))
    data: str = field(default="", metadata=opt(
        "UTKFace folder [default: $FACEFORGE_DATA/utkface or ../shared/data/utkface].", path="dir",
        show_default=False))
    size: int = field(default=32, metadata=opt("Input side (the generator's).", min=8))
    epochs: int = field(default=6, metadata=opt("Passes over the training faces.", min=1))
    batch_size: int = field(default=128, metadata=opt("Faces per step.", min=1))
    lr: float = field(default=2e-3, metadata=opt("Peak one-cycle learning rate (Adam).", min=0, min_open=True))
    seed: int = field(default=0, metadata=SEED)
    threads: int = field(default=1, metadata=opt("torch CPU threads.", min=1))
    cache_dir: str | None = field(default=None, metadata=opt("Cache of the decoded faces (.npy) [default: none].",
                                                             path="dir"))
    runs_dir: str = field(default="runs", metadata=RUNS_DIR)


@dataclass
class FaceShifterTrainConfig:
    """FaceShifter's AEI-Net face swap with dlib's 128-D embedding as the identity (:mod:`training.faceshifter`)."""

    data: str = field(default="", metadata=opt(
        FACE_FOLDER + "; files whose name's CRC-32 is 0 mod 20 are held out for evaluation.", path="dir",
        show_default=False))
    size: int = field(default=64, metadata=opt("Face side in pixels (64 or 128 on a CPU; 256 as published).",
                                               choices=(64, 128, 256)))
    width: float = field(default=0.25, metadata=opt("AEI-Net width factor (1 = published widths).", min=0,
                                                    min_open=True))
    ndf: int = field(default=16, metadata=opt("Discriminator width (published: 64).", min=1))
    num_d: int = field(default=3, metadata=opt("Discriminator scales.", min=1))
    batch_size: int = field(default=8, metadata=opt("Pairs per step.", min=2))
    total_steps: int = field(default=20000, metadata=opt("Training length in steps.", name="--steps", min=1))
    lr: float = field(default=4e-4, metadata=opt("Adam learning rate of G and D.", min=0, min_open=True))
    beta1: float = field(default=0.0, metadata=opt("Adam beta1.", min=0, max=1))
    beta2: float = field(default=0.999, metadata=opt("Adam beta2.", min=0, max=1))
    lambda_adv: float = field(default=1.0, metadata=opt("Weight of the hinge adversarial term.", min=0))
    lambda_att: float = field(default=10.0, metadata=opt("Weight of the attribute (multi-level feature) term.",
                                                         min=0))
    lambda_id: float = field(default=5.0, metadata=opt("Weight of the identity term (1 - cos).", min=0))
    lambda_rec: float = field(default=10.0, metadata=opt("Weight of the reconstruction term (source = target).",
                                                         min=0))
    id_center: bool = field(default=False, metadata=opt(
        "Identity cosine about the training faces' mean dlib embedding (dlib's embeddings of different people have "
        "cosine ~0.85, so plain 1 - cos is a weak signal)."))
    id_center_faces: int = field(default=512, metadata=opt("Faces (seeded subset) the mean embedding is taken over.",
                                                           min=1))
    id_views: int = field(default=0, metadata=opt(
        "Measure the identity term on this many randomly re-framed, blurred and re-sampled views of each swap "
        "and average (0: on the swap itself, as published), so the generator cannot pass it with pixel patterns "
        "only dlib reads. Each view costs one more identity-network pass.", min=0))
    init_from: str | None = field(default=None, metadata=opt(
        "Start G and D from this faceshifter run folder's last.pt, or G alone (D fresh) from AEI-Net weights such "
        "as faceforge/weights/faceshifter_aeinet64_w025_utkface.pt (weights only, fresh optimizers).", path="any",
        exists=True))
    same_fraction: float = field(default=0.2, metadata=opt(
        "Share of pairs whose source is the target itself (reconstruction term).", min=0, max=1))
    mirror: bool = field(default=True, metadata=opt("Random x-flips of the training faces."))
    limit: int | None = field(default=None, metadata=opt("Use only N training images (seeded subset).", min=2))
    seed: int = field(default=0, metadata=SEED)
    # 100 / 1000: what `faceforge train faceshifter` always used (see GPENTrainConfig)
    log_every: int = field(default=100, metadata=LOG_EVERY)
    sample_every: int = field(default=1000, metadata=SAMPLE_EVERY)
    eval_every: int = field(default=500, metadata=opt(
        "Steps between held-out swap evaluations (identity cosines, reconstruction PSNR).", min=1))
    judge: str | None = field(default=None, metadata=opt(
        "Independent identity judge of the held-out swaps: faceres (Human's FaceRes descriptor, found through "
        "$FACEFORGE_FACERES) adds val_fr_top1 / val_fr_cos_src to metrics.csv [default: none].",
        choices=("faceres",)))
    save_every: int = field(default=250, metadata=opt("Steps between last.pt / G.pt saves.", min=0))
    n_val: int = field(default=64, metadata=opt("Held-out faces of the evaluation.", min=2))
    runs_dir: str = field(default="runs", metadata=RUNS_DIR)
    cache_dir: str | None = field(default=None, metadata=opt(
        "Cache of the decoded faces (.npy) [default: none].", path="dir"))
    # runtime only (training.faceshifter.RUNTIME_FIELDS)
    resume: str | None = field(default=None, metadata=RESUME)
    stop_after_steps: int | None = field(default=None, metadata=STOP_AFTER)
    time_limit_min: float | None = field(default=None, metadata=TIME_LIMIT)
    threads: int | None = field(default=None, metadata=THREADS)
    device: str = field(default="auto", metadata=DEVICE)
    progress: bool = field(default=True, metadata=PROGRESS)

    def generator_config(self, id_dim: int) -> dict[str, Any]:
        return {"size": self.size, "width": self.width, "id_dim": id_dim}

    def discriminator_config(self) -> dict[str, Any]:
        return {"size": self.size, "ndf": self.ndf, "num_d": self.num_d}
