"""Word lists for the offline engine: stopwords, weak phrase words and number words."""

from __future__ import annotations

STOPWORDS = frozenset("""
a about above across after again against all almost along already also although always am among an
and another any anyone anything are around as at away be became because become becomes been before
being below between beyond both but by can cannot could did do does doing done down during each
either else enough etc even ever every few for from further get gets got had has have having he her
here hers herself him himself his how however i if in into is it its itself just last least less let
like likely made make makes many may me might more most mostly much must my myself near nearly neither
never new no nor not now of off often on once one only onto or other others otherwise our ours
ourselves out over own per perhaps quite rather really said same say says see seen she should since
so some something still such than that the their theirs them themselves then there therefore these
they this those though through thus to too toward towards under until up upon us use used uses using
very via was we well were what whatever when where whether which while who whom whose why will with
within without would yet you your yours yourself also-known according including includes include
within s t don doesn isn aren wasn weren won ll ve re d m inside outside behind beside besides
instead alongside despite unlike versus
le la les de des du un une et en est sont pour par avec sur dans au aux ce cette qui que ont ne pas
plus el los las del y con para una es son se lo der die das und ist nicht mit von zu den im ein eine
für auf os um uma com não
""".split())

# Verbs and fillers that turn a phrase into keyword soup ("grocer placed refill").
WEAK_EDGE_WORDS = frozenset("""
grew grow grows growing rose rise rises rising fell fall falls make makes made take takes took give
gives gave show shows showed shown want wants wanted need needs needed offer offers offered become
becomes became buy buys bought keep keeps kept find finds found think thinks expect expects expected
help helps helped start starts started turn turns turned say says said add adds added come comes came
go goes went look looks looked allow allows allowed let lets put puts set sets try tries tried
percent per cent year years time times way ways lot lots kind kinds thing things part parts number
first second third next last key major big large small high low top best better good great told
saw sold seen placed moved named said says saying asked gets got mean means meant used paid pay
pays remove removes reduce reduces cut cuts win wins earn earns cost costs spend spends spent
move moves like likes love loves bring brings brought
""".split())
# Number words: "six months" is a quantity, not a subject.
NUMBER_WORDS = frozenset("""
zero one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty
fifty hundred hundreds thousand thousands million millions billion billions half quarter third
dozen dozens several
""".split())
