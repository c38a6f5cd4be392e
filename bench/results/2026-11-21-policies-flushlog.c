/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * LD_PRELOAD shim behind the planner analysis of 2026-11-21-policies.md: logs every
 * iovaq_backend_flush() command list ("F n", then "kind am iova flags" per command) to $SHIMOUT.
 * The domain calls the exported iovaq_backend_flush() through the PLT, so the shim sees them.
 *   gcc -O2 -shared -fPIC -Iinclude bench/results/2026-11-21-policies-flushlog.c -o /tmp/fl.so -ldl
 *   SHIMOUT=/tmp/flush.txt LD_PRELOAD=/tmp/fl.so build/runbench/bench/iovaq-bench run \
 *       --policy deferred --workload nic-rx --nested --caching-mode --reps 1
 *   bench/results/2026-11-21-policies-planner.py /tmp/flush.txt
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <iovaq/iovaq.h>
static FILE *f;
int iovaq_backend_flush(struct iovaq_backend *be, const struct iovaq_inval *c, size_t n){
  static int (*real)(struct iovaq_backend*,const struct iovaq_inval*,size_t);
  if(!real){ real=dlsym(RTLD_NEXT,"iovaq_backend_flush"); f=fopen(getenv("SHIMOUT"),"w");}
  fprintf(f,"F %zu\n",n);
  for(size_t i=0;i<n;i++) fprintf(f,"%u %u %llx %u\n",c[i].kind,c[i].am,(unsigned long long)c[i].iova,c[i].flags);
  fflush(f);
  return real(be,c,n);
}
