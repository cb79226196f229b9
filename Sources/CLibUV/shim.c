// Intentionally empty: CLibUV is header-only; SwiftPM needs a source file in a C target.
#include "CLibUV.h"
