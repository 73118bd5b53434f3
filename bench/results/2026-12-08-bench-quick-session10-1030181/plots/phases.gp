set terminal pngcairo size 900,600 font ",10" noenhanced
set grid
set key below
set output "phases.png"
set title "edgemig phases: facedetect-edgemig-5-1 (handoff 24.07 s, downtime 0.45 s)"
unset key
set xlabel "seconds since the request"
set ytics ("" 0)
set yrange [-1:8]
set xrange [0:26.158]
set arrow from 23.616, graph 0 to 23.616, graph 1 nohead dt 2 lc rgb "gray30"
set label "source_stopped" at 23.626, graph 0.97 rotate by 90 right font ",8"
set arrow from 23.828, graph 0 to 23.828, graph 1 nohead dt 2 lc rgb "gray30"
set label "checkpoint_done" at 23.838, graph 0.97 rotate by 90 right font ",8"
set arrow from 24.066, graph 0 to 24.066, graph 1 nohead dt 2 lc rgb "gray30"
set label "target_running" at 24.076, graph 0.97 rotate by 90 right font ",8"
set arrow from 24.087, graph 0 to 24.087, graph 1 nohead dt 2 lc rgb "gray30"
set label "route_withdrawn" at 24.097, graph 0.97 rotate by 90 right font ",8"
set arrow from 24.220, graph 0 to 24.220, graph 1 nohead dt 2 lc rgb "gray30"
set label "source_cleaned" at 24.230, graph 0.97 rotate by 90 right font ",8"
plot "plots/phases.dat" u 3:1:3:4:($1-0.35):($1+0.35):ytic(2) w boxxyerror fs solid 0.6 lc rgb "#1a7f37", "plots/phases.dat" u 4:1:(sprintf(" %.2f MB", $5)) w labels left font ",8"
