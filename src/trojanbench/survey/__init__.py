"""Human evaluation: a self-hosted multiple-choice survey over a finished run (Casper et al. 2023, section 4).

``trojanbench survey serve RESULTS_DIR`` (extra ``[survey]``) turns a results folder into a study stored in
``RESULTS_DIR/survey.sqlite``; :mod:`.scores` puts people's accuracy beside the automatic judges',
:mod:`.simulate` runs scripted participants over HTTP. The web app itself (:mod:`.app`) needs the extra;
everything else here does not.
"""

from .scores import answers_per_cell, human_scores, krippendorff_alpha_nominal, wilson_interval
from .store import SURVEY_FILE, SurveyStore
from .study import Study, StudyDesign

__all__ = ["SURVEY_FILE", "Study", "StudyDesign", "SurveyStore", "answers_per_cell", "human_scores",
           "krippendorff_alpha_nominal", "wilson_interval"]
