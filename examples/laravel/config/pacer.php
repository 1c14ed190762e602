<?php

// Read by pacer's Laravel bridge (php/src/Laravel). `warm`: services built once when the
// worker boots and kept across requests; everything else resolved during a request is
// rebuilt for the next one. Leave it out to use the bridge's default list.
return [
    'warm' => Pacer\Laravel\LaravelApp::DEFAULT_WARM,
];
