"""Human evaluation: a self-hosted multiple-choice survey over a finished run (Casper et al. 2023, section 4).

``trojanbench survey serve RESULTS_DIR`` (extra ``[survey]``) turns a results folder into a study stored in
``RESULTS_DIR/survey.sqlite``; :mod:`.scores` puts people's accuracy beside the automatic judges',
:mod:`.simulate` runs scripted participants over HTTP. The web app itself (:mod:`.app`) needs the extra;
everything else here does not.
"""

from .._lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {
    ".scores": ["answers_per_cell", "human_scores", "krippendorff_alpha_nominal", "wilson_interval"],
    ".store": ["SURVEY_FILE", "SurveyStore"],
    ".study": ["Study", "StudyDesign"],
})
__all__ = ["SURVEY_FILE", "Study", "StudyDesign", "SurveyStore", "answers_per_cell", "human_scores",
           "krippendorff_alpha_nominal", "wilson_interval"]
