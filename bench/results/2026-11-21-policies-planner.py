#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
"""Replans the flushes logged by 2026-11-21-policies-flushlog.c with the sim's caching-mode cost
hints (2550 ns per command = 50 + a 2500 ns trap, 20 ns per covered page): the domain's exact
tiling, then bridging gaps a command costs more than, then one enclosing aligned block per
range where that is cheaper. Invalidating pages beyond the released ones is always safe."""
import sys
CMD=2550; PG=20; MAXAM=18
def tile(a,b):
    k=0;g=a
    while g<b:
        am=(g & -g).bit_length()-1 if g else 63
        am=min(am,MAXAM)
        while am and (1<<am)>b-g: am-=1
        k+=1; g+=1<<am
    return k
def enclose(a,b):
    # smallest aligned block covering [a,b)
    am=0
    while (a>>am)!=((b-1)>>am): am+=1
    return am
def flushes(fn):
    cur=None
    for line in open(fn):
        p=line.split()
        if p[0]=='F':
            if cur is not None: yield cur
            cur=[]
        else:
            kind,am,iova=int(p[0]),int(p[1]),int(p[2],16)
            g=iova>>12; cur.append((g,g+(1<<am)))
    if cur is not None: yield cur
def merge(r,gap=0):
    r=sorted(r); m=[]
    for a,b in r:
        if m and a<=m[-1][1]+gap: m[-1][1]=max(m[-1][1],b)
        else: m.append([a,b])
    return m
for fn in sys.argv[1:]:
    A=B=C=0; pages=0; extraB=extraC=0; nf=0
    for f in flushes(fn):
        nf+=1
        m=merge(f); pages+=sum(b-a for a,b in m)
        A+=sum(tile(a,b) for a,b in m)
        mb=merge(f,gap=CMD//PG)
        B+=sum(tile(a,b) for a,b in mb)
        extraB+=sum(b-a for a,b in mb)-sum(b-a for a,b in m)
        # C: per bridged range, choose tiling or one enclosing block (or 2 blocks split at midpoint) by cost
        for a,b in mb:
            t=tile(a,b); am=enclose(a,b)
            cost_t=t*CMD+(b-a)*PG; cost_e=CMD+(1<<am)*PG
            if cost_e<cost_t: C+=1; extraC+=(1<<am)-(b-a)
            else: C+=t
    print(f"{fn}: {nf} flushes, {pages} pages invalidated; exact tiling {A} cmds (1/{pages/A:.0f}); bridge gaps<=127: {B} (1/{pages/B:.0f}, +{extraB} pages covered); +enclosing block when cheaper: {C} (1/{pages/max(C,1):.0f})")
