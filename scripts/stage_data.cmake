# Stages erpq's read-only data in OUT (<build>/share/erpq) exactly as
# `cmake --install` lays it out in <prefix>/share/erpq (see
# core/erpq_datapath.h): roles.json and openapi.yaml from schemas/, the
# MySQL migrations from schemas/mysql as migrations/, templates/, and a copy
# of every built family's job schemas as schemas/jobs/<family>/. The stage
# is rebuilt from scratch, so a file removed from the sources is gone here.
include(${SPEC})
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT})
file(COPY ${ROOT}/schemas/roles.json ${ROOT}/schemas/openapi.yaml DESTINATION ${OUT})
file(GLOB sql ${ROOT}/schemas/mysql/*.sql)
file(COPY ${sql} DESTINATION ${OUT}/migrations)
if(EXISTS ${ROOT}/templates)
  file(COPY ${ROOT}/templates/ DESTINATION ${OUT}/templates)
endif()
foreach(fam ${FAMILIES})
  file(GLOB js ${F_${fam}_DIR}/schemas/*.json)
  file(COPY ${js} DESTINATION ${OUT}/schemas/jobs/${fam})
endforeach()
