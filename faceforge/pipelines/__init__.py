"""Face pipelines: the decode -> detect -> select -> align -> model -> paste back skeleton every task shares.

See :mod:`faceforge.pipelines.base`. The tasks themselves (:class:`faceforge.emotion.EmotionRecognizer`,
:class:`faceforge.age.AgeEstimator`, :class:`faceforge.translate.FaceTranslator`,
:class:`faceforge.frontalize.Frontalizer`, :class:`faceforge.restore.FaceRestorer`,
:class:`faceforge.faceshifter.FaceShifterSwapper`) are its subclasses.
"""

from faceforge.pipelines.base import FaceJob, FacePipeline, PipelineRun, check_rgb

__all__ = ["FaceJob", "FacePipeline", "PipelineRun", "check_rgb"]
